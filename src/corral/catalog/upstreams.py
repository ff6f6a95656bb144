"""Build the engine for a catalog snapshot served by an upstream (a URL, a pool, or
processes corral launches and supervises), and watch the health of those not in memory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import httpx

from corral.catalog.schema import ModelSpec, UpstreamSource
from corral.core.errors import ModelNotAvailableError
from corral.engines.base import EngineInfo
from corral.engines.pool import Pool, PoolSettings, Replica
from corral.engines.supervisor import Supervisor
from corral.engines.upstream import UpstreamEngine

log = logging.getLogger(__name__)

WATCH_S = 5.0  # how often the watch checks the upstreams that are not in memory


def _key(source: UpstreamSource) -> str | None:
    return os.environ.get(source.api_key_env) if source.api_key_env else None


def _pool(source: UpstreamSource, urls: list[str]) -> Pool:
    key = _key(source)
    return Pool(
        [Replica(url.rstrip("/"), key) for url in urls],
        PoolSettings(max_concurrent=source.max_concurrent, affinity=source.affinity),
    )


def upstream_engine(spec: ModelSpec, info: EngineInfo, log_dir: Path) -> UpstreamEngine:
    source = spec.upstream
    if source is None:
        raise ModelNotAvailableError(f"`{spec.id}` has no upstream configured.", param="model")
    supervisors = []
    if source.launch is not None:
        supervisors = [
            Supervisor(source.launch, name=f"{spec.id}-{i}", log_dir=log_dir, api_key=_key(source))
            for i in range(source.replicas)
        ]
        urls = [s.url + "/v1" for s in supervisors]
    else:
        urls = source.pool_urls
    return UpstreamEngine(
        _pool(source, urls),
        source.model or spec.id,
        info,
        timeout_s=source.timeout_s,
        supervisors=supervisors,
    )


class UpstreamWatch:
    """Whether an upstream's pool has a replica that answers, for the snapshots served
    from URLs, loaded or not: ``/v1/models`` lists an upstream only while one does (its
    engine, loaded on a first request, checks its own pool every second; this is what is
    known before that). The same probe as the pool's (``GET /models``), every
    ``interval_s``. Nothing counts as up until the first check has ended. Launched
    upstreams are not watched: a request starts them."""

    def __init__(self, specs: Iterable[ModelSpec], interval_s: float = WATCH_S) -> None:
        self.pools = {
            s.id: _pool(s.upstream, s.upstream.pool_urls)
            for s in specs
            if s.upstream is not None and s.upstream.launch is None
        }
        self.checked = False  # until the first round ends, nothing is known to answer
        self._interval = interval_s
        self._http: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None

    def up(self, snapshot_id: str) -> bool | None:
        """Whether one of its replicas answered the last check (None: not watched)."""
        pool = self.pools.get(snapshot_id)
        if pool is None:
            return None
        return self.checked and any(r.healthy for r in pool.replicas)

    async def check(self) -> None:
        """One round: every pool at once (a replica that times out takes 2 s)."""
        assert self._http is not None
        await asyncio.gather(*(p.check(self._http) for p in self.pools.values()))
        self.checked = True

    async def start(self) -> None:
        if self.pools and self._task is None:
            self._http = httpx.AsyncClient()
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # the loop is what sees a replica come back: it must not die
                log.exception("upstream watch failed")
            await asyncio.sleep(self._interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None
