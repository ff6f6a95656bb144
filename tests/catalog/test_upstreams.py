"""Upstream snapshots in /v1/models: listed while their pool has a replica that answers
(the watch's checks before a first request, the engine's own pool after), whatever the
catalog says; back once a replica answers again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import date
from pathlib import Path

import pytest

from corral.catalog.models import ModelsService
from corral.catalog.registry import ModelRegistry, engine_info
from corral.catalog.schema import ModelSpec, load_catalog
from corral.catalog.upstreams import upstream_engine
from corral.core.config import EngineSettings
from corral.core.errors import EngineUnavailableError
from corral.engines.base import Engine
from tests.fakes import FakeUpstream, closed_port

TODAY = date(2026, 6, 1)
WATCH_S = 0.05


def upstream_catalog(folder: Path, urls: dict[str, str]) -> Path:
    """A family ``up-<name>`` per upstream (aliases: it and ``up-<name>-latest``), with one
    snapshot ``up-<name>-1``."""
    families = "".join(
        f"""\
  - id: up-{name}
    name: Up {name}
    owner: corral-tests
    description: An upstream.
    context_window: 4096
    capabilities: [chat]
    pricing: {{input: 1.0, output: 2.0}}
    latest_alias: up-{name}-latest
    snapshots:
      - id: up-{name}-1
        stages: {{active: 2026-01-01}}
        source: {{upstream: {{url: "{url}"}}}}
"""
        for name, url in urls.items()
    )
    path = folder / "upstreams.yaml"
    path.write_text(f"version: 1\nfamilies:\n{families}")
    return path


def registry_of(folder: Path, urls: dict[str, str]) -> ModelRegistry:
    catalog = load_catalog(upstream_catalog(folder, urls), shipped=False, today=lambda: TODAY)
    settings = EngineSettings()

    def factory(spec: ModelSpec) -> Engine:
        return upstream_engine(spec, engine_info(spec, settings), folder)

    return ModelRegistry(catalog, factory, engine_settings=settings, upstream_watch_s=WATCH_S)


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


@pytest.fixture
async def live() -> AsyncIterator[FakeUpstream]:
    server = await FakeUpstream().start()
    try:
        yield server
    finally:
        await server.stop()


def listed(registry: ModelRegistry) -> set[str]:
    return {c.id for c in ModelsService(registry).list().data}


async def test_a_closed_port_is_left_out_and_comes_back_once_it_answers(
    tmp_path: Path, live: FakeUpstream
) -> None:
    dead = FakeUpstream(closed_port())
    registry = registry_of(tmp_path, {"live": live.url, "dead": dead.url})
    models = ModelsService(registry)
    await registry.start()
    try:
        await until(lambda: "up-live-1" in listed(registry))
        assert listed(registry) == {"up-live-1", "up-live", "up-live-latest"}
        # The whole catalog and a retrieve still show it, and say it cannot be called now.
        every = {c.id: c.available for c in models.list(everything=True).data}
        assert every == {
            "up-live-1": True,
            "up-live": True,
            "up-live-latest": True,
            "up-dead-1": False,
            "up-dead": False,
            "up-dead-latest": False,
        }
        assert models.retrieve("up-dead-1").available is False
        assert models.retrieve("up-dead-latest").state == "active"
        await dead.start()  # a replica answers on its URL: listed again at the next check
        try:
            await until(lambda: "up-dead-1" in listed(registry))
            assert models.retrieve("up-dead-latest").available is True
        finally:
            await dead.stop()
        await until(lambda: "up-dead-1" not in listed(registry))
    finally:
        await registry.close()


async def test_a_loaded_upstream_is_listed_by_its_own_pool(
    tmp_path: Path, live: FakeUpstream
) -> None:
    """After a first request its engine's pool says: a replica whose requests fail is out
    at once (not at the watch's next check), and back when its health check passes."""
    registry = registry_of(tmp_path, {"live": live.url})
    await registry.start()
    try:
        await until(lambda: "up-live-1" in listed(registry))
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        engine = registry.get("up-live").engine
        assert (await engine.chat(body))["choices"][0]["message"]["content"] == "up"
        assert registry.is_loaded("up-live-1")
        await live.stop()
        with pytest.raises(EngineUnavailableError):
            await engine.chat(body)
        assert "up-live-1" not in listed(registry)
        await live.start()  # the same port
        await until(lambda: "up-live-1" in listed(registry))  # the pool's check, every 1 s
        assert (await engine.chat(body))["choices"][0]["message"]["content"] == "up"
    finally:
        await registry.close()


def test_a_registry_not_started_lists_upstreams_as_before(tmp_path: Path) -> None:
    """Nothing checked them: a request would (CLI listings of a catalog, unit tests)."""
    registry = registry_of(tmp_path, {"dead": f"http://127.0.0.1:{closed_port()}/v1"})
    assert listed(registry) == {"up-dead-1", "up-dead", "up-dead-latest"}
