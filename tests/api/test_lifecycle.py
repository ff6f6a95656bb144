"""Aliases, lifecycle headers, shutdown refusals, /v1/models fields, on-demand loading
under a memory budget: the API over fake engines (the live-server tests use the real one)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from corral.app import create_app, default_registry
from corral.catalog.registry import ModelRegistry
from corral.catalog.schema import ModelSpec, load_catalog
from corral.core.config import Settings
from corral.core.errors import ModelShutdownError
from tests.fakes import FakeEngine
from tests.lifecycle_catalog import test_catalog as make_catalog

TODAY = date(2026, 6, 1)


class SlowFake(FakeEngine):
    """A fake that takes a while to load and records loads and closes."""

    starts: ClassVar[list[str]] = []
    closes: ClassVar[list[str]] = []

    def __init__(self, model_id: str) -> None:
        super().__init__(context_window=2048)
        self.model_id = model_id

    async def start(self) -> None:
        await asyncio.sleep(0.2)
        SlowFake.starts.append(self.model_id)

    async def close(self) -> None:
        SlowFake.closes.append(self.model_id)


def registry_for(tmp_path: Path, budget_mib: int = 10_000) -> ModelRegistry:
    catalog = load_catalog(make_catalog(tmp_path, TODAY), shipped=False, today=lambda: TODAY)

    def factory(spec: ModelSpec) -> FakeEngine:
        return SlowFake(spec.id)

    return ModelRegistry(catalog, factory, memory_budget_mib=budget_mib, load_timeout_s=5)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, ModelRegistry]]:
    SlowFake.starts, SlowFake.closes = [], []
    registry = registry_for(tmp_path, budget_mib=700)  # two 300 MiB models fit, not three
    app = create_app(Settings(data_dir=tmp_path / "data"), registry)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client, registry


def chat(model: str, **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi there"}], **extra}


async def test_alias_resolves_and_response_names_snapshot(setup) -> None:  # type: ignore[no-untyped-def]
    http, _ = setup
    r = await http.post("/v1/chat/completions", json=chat("tiny-a"))
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "tiny-a-new"
    assert r.headers["x-corral-model"] == "tiny-a-new"
    assert r.headers["x-corral-alias"] == "tiny-a; snapshot=tiny-a-new"
    assert "deprecation" not in r.headers
    r = await http.post("/v1/chat/completions", json=chat("tiny-latest", stream=True))
    assert r.status_code == 200
    assert '"model":"tiny-a-next"' in r.text.replace(" ", "")
    assert r.headers["x-corral-alias"] == "tiny-latest; snapshot=tiny-a-next"
    r = await http.post("/v1/completions", json={"model": "tiny-b", "prompt": "x"})
    assert r.json()["model"] == "tiny-b-1"


async def test_deprecated_snapshot_serves_with_headers(setup) -> None:  # type: ignore[no-untyped-def]
    http, _ = setup
    r = await http.post("/v1/chat/completions", json=chat("tiny-a-old"))
    assert r.status_code == 200 and r.json()["model"] == "tiny-a-old"
    deprecated = datetime(2026, 5, 22, tzinfo=UTC)
    assert r.headers["deprecation"] == f"@{int(deprecated.timestamp())}"
    assert parsedate_to_datetime(r.headers["sunset"]) == datetime(2026, 9, 9, tzinfo=UTC)
    assert '</v1/models/tiny-a-new>; rel="successor-version"' in r.headers["link"]
    r = await http.post("/v1/embeddings", json={"model": "tiny-a-old", "input": "x"})
    assert r.status_code == 200 and "sunset" in r.headers


async def test_shut_down_snapshot_refuses_naming_replacement(setup) -> None:  # type: ignore[no-untyped-def]
    http, _ = setup
    r = await http.post("/v1/chat/completions", json=chat("tiny-a-gone"))
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "model_shutdown" and error["param"] == "model"
    assert "tiny-a-new" in error["message"] and "2026-05-31" in error["message"]
    r = await http.post("/v1/chat/completions", json=chat("no-such-model"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


async def test_models_list_and_alias_history(setup) -> None:  # type: ignore[no-untyped-def]
    http, _ = setup
    data = {m["id"]: m for m in (await http.get("/v1/models")).json()["data"]}
    assert "tiny-a-gone" not in data
    new = data["tiny-a-new"]
    assert new["object"] == "model" and new["owned_by"] == "corral-tests"
    assert new["snapshot_of"] == "tiny-a" and new["aliases"] == ["tiny-a"]
    assert new["state"] == "active" and new["stages"]["active"] == "2026-02-01"
    assert new["pricing"] == {
        "input": 0.5,
        "cached_input": 0.25,
        "output": 1.5,
        "batch_input": 0.25,  # half, by default
        "batch_output": 0.75,
        "unit": "USD per 1M tokens",
    }
    assert new["context_window"] == 2048 and new["capabilities"] == [
        "chat",
        "completions",
        "embeddings",
    ]
    assert data["tiny-a-old"]["state"] == "deprecated"
    assert data["tiny-a-old"]["replacement"] == "tiny-a-new"
    assert data["tiny-a-next"]["state"] == "preview"
    assert data["tiny-a"]["alias_for"] == "tiny-a-new"
    alias = (await http.get("/v1/models/tiny-a")).json()
    assert alias["alias_for"] == "tiny-a-new"
    moves = [(m["since"], m["snapshot"]) for m in alias["alias_history"]]
    assert moves == [
        ("2025-04-27", "tiny-a-gone"),
        ("2025-11-13", "tiny-a-old"),
        ("2026-02-01", "tiny-a-new"),
    ]
    gone = (await http.get("/v1/models/tiny-a-gone")).json()
    assert gone["state"] == "shutdown"
    deps = (await http.get("/v1/deprecations")).json()["data"]
    assert [(d["id"], d["state"], d["replacement_snapshot"]) for d in deps] == [
        ("tiny-a-gone", "shutdown", "tiny-a-new"),
        ("tiny-a-old", "deprecated", "tiny-a-new"),
    ]


async def test_pages_render_from_catalog_escaped(setup) -> None:  # type: ignore[no-untyped-def]
    http, _ = setup
    page = (await http.get("/models")).text
    assert 'data-model="tiny-a"' in page and 'data-model="tiny-b"' in page
    assert "Tiny A &lt;b&gt;test&lt;/b&gt; model" in page and "<b>test</b>" not in page
    deps = (await http.get("/deprecations")).text
    assert 'data-snapshot="tiny-a-old"' in deps and 'data-snapshot="tiny-a-new"' not in deps


async def test_loads_on_demand_within_budget_lru(setup) -> None:  # type: ignore[no-untyped-def]
    http, registry = setup
    assert SlowFake.starts == []  # nothing preloaded
    # two concurrent requests for one model while it loads: one load, both served
    r1, r2 = await asyncio.gather(
        http.post("/v1/chat/completions", json=chat("tiny-a")),
        http.post("/v1/chat/completions", json=chat("tiny-a")),
    )
    assert r1.status_code == r2.status_code == 200
    assert SlowFake.starts == ["tiny-a-new"]
    assert (await http.post("/v1/chat/completions", json=chat("tiny-b"))).status_code == 200
    assert registry.used_mib() == 600
    # a third model: the least recently used idle one (tiny-a-new) is unloaded to fit
    assert (await http.post("/v1/chat/completions", json=chat("tiny-a-old"))).status_code == 200
    assert SlowFake.closes == ["tiny-a-new"]
    assert registry.used_mib() == 600 and registry.unloads == 1
    ready = (await http.get("/ready")).json()
    assert ready["engines"]["tiny-a-new"]["state"] == "unloaded"
    assert ready["engines"]["tiny-b-1"]["state"] == "loaded"
    assert ready["memory"] == {"budget_mib": 700, "used_mib": 600}
    metrics = (await http.get("/metrics")).text
    assert 'corral_model_state{model="tiny-a-old",state="loaded"} 1.0' in metrics
    assert "corral_model_unloads_total 1.0" in metrics


async def test_busy_model_is_not_unloaded(setup) -> None:  # type: ignore[no-untyped-def]
    http, registry = setup
    await http.post("/v1/chat/completions", json=chat("tiny-a"))
    await http.post("/v1/chat/completions", json=chat("tiny-b"))
    # tiny-a-new is least recently used, but a request holds it: tiny-b-1 goes instead
    managed = registry.get("tiny-a").engine
    managed.users += 1  # type: ignore[attr-defined]
    try:
        assert (await http.post("/v1/chat/completions", json=chat("tiny-a-old"))).status_code == 200
    finally:
        managed.users -= 1  # type: ignore[attr-defined]
    assert SlowFake.closes == ["tiny-b-1"]


async def test_alias_of_only_shut_down_snapshots_names_the_replacement(tmp_path: Path) -> None:
    catalog = load_catalog(make_catalog(tmp_path, TODAY), shipped=False, today=lambda: TODAY)
    gone = catalog.snapshots["tiny-a-gone"]
    # a family holding only a shut-down snapshot
    lone = replace(gone, id="tiny-z-1", family=gone.family.model_copy(update={"id": "tiny-z"}))
    registry = ModelRegistry(catalog.with_snapshots([lone]))
    with pytest.raises(ModelShutdownError) as err:
        registry.get("tiny-z")
    assert "tiny-a-new" in err.value.message and err.value.code == "model_shutdown"


def test_a_gguf_path_is_served_as_its_own_snapshot(tmp_path: Path) -> None:
    gguf = tmp_path / "My-Model.Q4.gguf"
    gguf.write_bytes(b"GGUF")
    registry = default_registry(Settings(data_dir=tmp_path / "data", model=str(gguf)))
    served = registry.get("my-model.q4")
    assert served.spec.path == gguf.resolve() and served.spec.owned_by == "local"
    assert registry.get("llama3.1-8b").spec.id == "llama3.1-8b-2024-07-23"  # catalog too


async def test_an_upstream_with_no_replica_answering_is_not_listed(tmp_path: Path) -> None:
    """The shipped catalog's 405B points at 127.0.0.1:8001: with nothing there it is left
    out of /v1/models (a request to it would be 503 `upstream_unavailable`); the catalog's
    listing and a retrieve still show it, not available (tests/catalog/test_upstreams.py:
    a live upstream, and one that comes back)."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", 8001)
    except OSError:
        pass
    else:
        writer.close()
        pytest.skip("something listens on 127.0.0.1:8001")
    registry = ModelRegistry(load_catalog(), lambda spec: FakeEngine(), upstream_watch_s=0.05)
    app = create_app(Settings(data_dir=tmp_path / "data"), registry)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            await asyncio.sleep(0.3)  # the watch has checked, more than once
            listed = {m["id"] for m in (await http.get("/v1/models")).json()["data"]}
            every = (await http.get("/v1/models?all=true")).json()["data"]
            card = (await http.get("/v1/models/llama3.1-405b")).json()
            anthropic = await http.get("/v1/models", headers={"anthropic-version": "2023-06-01"})
    assert "llama3.1-405b-2024-07-23" not in listed and "llama3.1-405b" not in listed
    assert {m["id"]: m["available"] for m in every}["llama3.1-405b-2024-07-23"] is False
    assert card["alias_for"] == "llama3.1-405b-2024-07-23" and card["available"] is False
    assert "llama3.1-405b" not in {m["id"] for m in anthropic.json()["data"]}


async def test_get_has_no_side_effects_and_an_eval_check_sets_no_headers(setup) -> None:  # type: ignore[no-untyped-def]
    """registry.get returns the lifecycle headers instead of writing them anywhere: a
    yes/no check of a model (an eval run's) leaves its response alone."""
    http, registry = setup
    served = registry.get("tiny-a")
    assert served.headers["x-corral-alias"] == "tiny-a; snapshot=tiny-a-new"
    assert registry.get("tiny-a-new").headers == {"x-corral-model": "tiny-a-new"}
    assert "sunset" in registry.get("tiny-a-old").headers
    config = {"type": "custom", "item_schema": {"type": "object"}, "include_sample_schema": True}
    check = {
        "type": "string_check",
        "name": "c",
        "input": "{{sample.output_text}}",
        "reference": "x",
        "operation": "eq",
    }
    body = {"name": "e", "data_source_config": config, "testing_criteria": [check]}
    r = await http.post("/v1/evals", json=body)
    assert r.status_code == 200, r.text
    source = {
        "type": "completions",
        "model": "tiny-a-old",
        "input_messages": {"type": "template", "template": [{"role": "user", "content": "x"}]},
        "source": {"type": "file_content", "content": [{"item": {}}]},
    }
    run = await http.post(f"/v1/evals/{r.json()['id']}/runs", json={"data_source": source})
    assert run.status_code == 200, run.text
    assert "sunset" not in run.headers and "x-corral-model" not in run.headers


async def test_models_lists_what_is_callable_now(tmp_path: Path) -> None:
    """Snapshots whose weights are not here (and their aliases) are left out of
    /v1/models unless ?all=true asks for the whole catalog."""
    missing = tmp_path / "not-downloaded.gguf"
    catalog = load_catalog(
        make_catalog(tmp_path, TODAY, gguf=missing), shipped=False, today=lambda: TODAY
    )
    registry = ModelRegistry(catalog, lambda spec: SlowFake(spec.id), load_timeout_s=5)
    app = create_app(Settings(data_dir=tmp_path / "data"), registry)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            listed = {m["id"] for m in (await http.get("/v1/models")).json()["data"]}
            every = {m["id"] for m in (await http.get("/v1/models?all=true")).json()["data"]}
            refused = await http.post("/v1/chat/completions", json=chat("tiny-a-new"))
    assert "tiny-a-new" not in listed and "tiny-a" not in listed
    assert {"tiny-a-new", "tiny-a"} <= every
    assert refused.status_code == 503 and "not downloaded" in refused.json()["error"]["message"]
