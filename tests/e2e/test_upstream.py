"""corral's upstream engine over a pool of two live corral replicas: pass-through
streaming with usage, failover when a replica dies under load, recovery when it returns."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from corral.core.errors import CorralError
from corral.engines.base import EngineInfo
from corral.engines.pool import Pool, PoolSettings, Replica
from corral.engines.upstream import UpstreamEngine
from tests.conftest import MODEL, LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[list[LiveServer]]:
    servers = [LiveServer(tmp_path / f"r{i}") for i in range(2)]
    try:
        for s in servers:
            await asyncio.to_thread(s.wait_ready)
        yield servers
    finally:
        for s in servers:
            s.stop()


def engine_for(servers: list[LiveServer]) -> UpstreamEngine:
    pool = Pool(
        [Replica(s.url + "/v1") for s in servers],
        PoolSettings(eject_after=1, eject_for_s=2.0, health_interval_s=0.3),
    )
    return UpstreamEngine(pool, MODEL, EngineInfo(8192, "fp_up_test", True, 8, 8192))


BODY = {
    "messages": [{"role": "user", "content": "Count to twenty."}],
    "max_tokens": 24,
    "ignore_eos": True,
}


async def test_stream_passes_through_with_usage(replicas: list[LiveServer]) -> None:
    engine = engine_for(replicas)
    await engine.start()
    try:
        chunks = [c async for c in engine.chat_stream(BODY)]
        text = "".join(
            (c["choices"][0].get("delta") or {}).get("content") or ""
            for c in chunks
            if c.get("choices")
        )
        usage = [c["usage"] for c in chunks if c.get("usage")]
        assert text and usage and usage[-1]["completion_tokens"] == 24
        plain = await engine.chat({**BODY, "max_tokens": 3})
        assert plain["usage"]["completion_tokens"] == 3
    finally:
        await engine.close()


async def run_one(engine: UpstreamEngine) -> tuple[str, bool]:
    """('ok' | 'failed', whether output had started)."""
    started = False
    try:
        async for chunk in engine.chat_stream(BODY):
            if chunk.get("choices"):
                started = True
        return "ok", started
    except CorralError:
        return "failed", started


async def test_replica_death_loses_no_unstarted_request(
    replicas: list[LiveServer], tmp_path: Path
) -> None:
    engine = engine_for(replicas)
    await engine.start()
    doomed = replicas[0]
    try:
        tasks = [asyncio.create_task(run_one(engine)) for _ in range(16)]
        await asyncio.sleep(0.5)
        doomed.proc.kill()  # dies under load
        more = [asyncio.create_task(run_one(engine)) for _ in range(8)]  # sent after death
        results = await asyncio.gather(*tasks, *more)
        lost = [r for r in results if r == ("failed", False)]
        assert not lost, f"requests lost before streaming: {results}"
        assert all(r[0] == "ok" for r in results[16:])
        # the replica comes back on the same port: the pool re-admits it
        back = LiveServer(tmp_path / "r0b", port=doomed.port)
        replicas.append(back)
        await asyncio.to_thread(back.wait_ready)
        deadline = time.monotonic() + 10
        first = engine.pool.replicas[0]
        while not (first.healthy and first.ejected_until <= time.monotonic()):
            assert time.monotonic() < deadline, "replica was not re-admitted"
            await asyncio.sleep(0.1)
        before = first.served
        await asyncio.gather(*(run_one(engine) for _ in range(4)))
        assert first.served > before
    finally:
        await engine.close()
