"""The Batch API over a fake engine, the worker driven by hand: lines run once at the batch
price, projects kept apart, budgets stop a batch, cancel and expiry keep what finished."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select

from corral.accounts.accounting import cost_nano
from corral.accounts.usage import Window, daily
from corral.app import create_app
from corral.core.config import BatchSettings, Settings
from corral.engines.base import Body
from corral.storage.db import Database
from corral.storage.tables import NANO, Usage
from tests.fakes import FakeEngine, fake_registry, migrated

ADMIN = "admin-key-for-tests-0123456789abcdef"
MODEL = "fake-model"
PRICES = {"price_input_per_m": 1000.0, "price_output_per_m": 2000.0}
CHAT = "/v1/chat/completions"


def line(i: int, url: str = CHAT, **body: Any) -> dict[str, Any]:
    content = {"messages": [{"role": "user", "content": f"hello {i}"}], "max_tokens": 8}
    return {
        "custom_id": f"req-{i}",
        "method": "POST",
        "url": url,
        "body": {"model": MODEL, **content, **body},
    }


class World:
    def __init__(self, app: FastAPI, http: httpx.AsyncClient, settings: Settings) -> None:
        self.app, self.http, self.settings = app, http, settings
        self.admin = {"Authorization": f"Bearer {ADMIN}"}

    async def key(self, name: str, **project: Any) -> dict[str, str]:
        body = {"name": name, **project}
        made = await self.http.post("/v1/organization/projects", json=body, headers=self.admin)
        path = f"/v1/organization/projects/{made.json()['id']}/api_keys"
        key = (await self.http.post(path, json={}, headers=self.admin)).json()["value"]
        return {"Authorization": f"Bearer {key}"}

    async def upload(self, rows: list[Any], who: dict[str, str]) -> str:
        data = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)
        files = {"file": ("in.jsonl", data.encode())}
        r = await self.http.post("/v1/files", data={"purpose": "batch"}, files=files, headers=who)
        assert r.status_code == 200, r.text
        return str(r.json()["id"])

    async def batch(self, rows: list[Any], who: dict[str, str], url: str = CHAT) -> dict[str, Any]:
        body = {"input_file_id": await self.upload(rows, who), "endpoint": url}
        r = await self.http.post(
            "/v1/batches", json={**body, "completion_window": "24h"}, headers=who
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def run_all(self) -> None:
        worker = self.app.state.services.batch_worker
        while (batch_id := await worker.claim()) is not None:
            await worker.execute(batch_id)
        await self.app.state.services.accounting.settled()

    async def get(self, batch_id: str, who: dict[str, str]) -> dict[str, Any]:
        return dict((await self.http.get(f"/v1/batches/{batch_id}", headers=who)).json())

    async def lines(self, file_id: str, who: dict[str, str]) -> list[dict[str, Any]]:
        text = (await self.http.get(f"/v1/files/{file_id}/content", headers=who)).text
        return [json.loads(x) for x in text.splitlines()]

    async def usage(self) -> list[Usage]:
        db = Database(self.settings.db_url)
        try:
            async with db.session() as s:
                return list(await s.scalars(select(Usage)))
        finally:
            await db.close()


async def world_for(
    tmp_path: Path, batches: BatchSettings, engine: FakeEngine | None = None
) -> AsyncIterator[World]:
    settings = migrated(Settings(data_dir=tmp_path, admin_key=SecretStr(ADMIN), batches=batches))
    app = create_app(settings, fake_registry(engine, model_id=MODEL, **PRICES))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        try:
            yield World(app, http, settings)
        finally:
            await app.state.services.db.close()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async for w in world_for(tmp_path, BatchSettings()):
        yield w


async def test_each_line_runs_once_at_the_batch_price(world: World) -> None:
    who = await world.key("p")
    made = await world.batch([line(i) for i in range(6)], who)
    assert made["status"] == "in_progress" and made["request_counts"]["total"] == 6
    await world.run_all()
    done = await world.get(made["id"], who)
    assert done["status"] == "completed" and done["error_file_id"] is None
    assert done["request_counts"] == {"total": 6, "completed": 6, "failed": 0}
    assert done["completed_at"] >= done["in_progress_at"]
    out = await world.lines(done["output_file_id"], who)
    assert sorted(x["custom_id"] for x in out) == [f"req-{i}" for i in range(6)]
    body = out[0]["response"]["body"]
    assert out[0]["response"]["status_code"] == 200 and body["choices"][0]["message"]
    rows = await world.usage()
    assert len(rows) == 6 and {r.endpoint for r in rows} == {"batch"}
    assert {r.batch_endpoint for r in rows} == {"chat"}  # the endpoint each line ran
    spec = world.app.state.services.registry.get(MODEL).spec
    for row in rows:  # half the interactive price
        interactive = cost_nano(spec, row.prompt_tokens, 0, row.completion_tokens)
        assert row.cost_nano == pytest.approx(interactive / 2, abs=1)
    # The usage and costs reports show batch apart, as OpenAI's do.
    params = {"start_time": int(done["created_at"]) - 60, "group_by": ["model", "batch"]}
    usage = await world.http.get(
        "/v1/organization/usage/completions", params=params, headers=world.admin
    )
    results = [r for b in usage.json()["data"] for r in b["results"]]
    assert [(r["model"], r["batch"], r["num_model_requests"]) for r in results] == [
        (MODEL, True, 6)
    ]
    params["group_by"] = ["model", "batch", "batch_endpoint"]
    usage = await world.http.get(
        "/v1/organization/usage/completions", params=params, headers=world.admin
    )
    results = [r for b in usage.json()["data"] for r in b["results"]]
    assert [(r["batch"], r["batch_endpoint"]) for r in results] == [(True, "chat")]
    params["group_by"] = ["line_item"]
    costs = await world.http.get("/v1/organization/costs", params=params, headers=world.admin)
    items = [r["line_item"] for b in costs.json()["data"] for r in b["results"]]
    assert items == [f"{MODEL}, batch"]
    # The usage page's rows: the batch apart, with the endpoint its lines ran.
    window = Window.parse(int(done["created_at"]) - 60, None, "1d", 1)
    days = await daily(world.app.state.services.usage, window)
    assert [(r.model, r.requests) for d in days for r in d.rows] == [(f"{MODEL} (batch, chat)", 6)]
    assert days[0].rows[0].cost == pytest.approx(sum(r.cost_nano for r in rows) / NANO)


async def test_an_embeddings_batch(world: World) -> None:
    who = await world.key("p")
    rows = [
        {"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
         "body": {"model": MODEL, "input": f"text {i}"}}
        for i in range(3)
    ]  # fmt: skip
    made = await world.batch(rows, who, "/v1/embeddings")
    await world.run_all()
    done = await world.get(made["id"], who)
    out = await world.lines(done["output_file_id"], who)
    assert [x["response"]["body"]["object"] for x in out] == ["list"] * 3
    rows = await world.usage()
    assert {(r.endpoint, r.batch_endpoint) for r in rows} == {("batch", "embeddings")}
    # Embeddings are not completions usage, run alone or in a batch.
    params = {"start_time": int(done["created_at"]) - 60, "group_by": ["batch"]}
    usage = await world.http.get(
        "/v1/organization/usage/completions", params=params, headers=world.admin
    )
    assert [r for b in usage.json()["data"] for r in b["results"]] == []


async def test_a_bad_file_fails_with_line_numbers(world: World) -> None:
    who = await world.key("p")
    rows: list[Any] = [
        line(0),
        "not json",
        {**line(2), "custom_id": "req-0"},
        line(3, url="/v1/completions"),
        line(4, model="no-such-model"),
        line(5, stream=True),
        line(6, n=999),
        line(7, max_tokens="5"),  # strict, as a request is
        line(8, background=True),  # a stream in the runner: it crashed the batch
    ]
    made = await world.batch(rows, who)
    assert made["status"] == "failed" and made["failed_at"]
    errors = [(e["line"], e["code"]) for e in made["errors"]["data"]]
    assert errors == [
        (2, "invalid_json_line"),
        (3, "duplicate_custom_id"),
        (4, "mismatched_endpoint"),
        (5, "model_not_found"),
        (6, "invalid_request"),
        (7, "invalid_request"),
        (8, "invalid_type"),
        (9, "invalid_request"),
    ]
    await world.run_all()
    assert await world.usage() == []  # nothing ran, nothing billed


async def test_another_project_cannot_see_a_batch_or_its_files(world: World) -> None:
    mine, theirs = await world.key("mine"), await world.key("theirs")
    made = await world.batch([line(0)], mine)
    await world.run_all()
    done = await world.get(made["id"], mine)
    assert (await world.http.get(f"/v1/batches/{made['id']}", headers=theirs)).status_code == 404
    cancel = await world.http.post(f"/v1/batches/{made['id']}/cancel", headers=theirs)
    assert cancel.status_code == 404
    content = f"/v1/files/{done['output_file_id']}/content"
    assert (await world.http.get(content, headers=theirs)).status_code == 404
    listed = (await world.http.get("/v1/batches", headers=theirs)).json()
    assert listed["data"] == []
    body = {"input_file_id": made["input_file_id"], "endpoint": CHAT, "completion_window": "24h"}
    assert (await world.http.post("/v1/batches", json=body, headers=theirs)).status_code == 404


async def test_a_budget_stops_the_batch_without_overspending(world: World) -> None:
    # One line reserves at most (prompt bound + 8 output tokens) at the batch price: a
    # budget of two and a half such lines lets two run.
    who = await world.key("small", budget_usd=0.06)
    made = await world.batch([line(i) for i in range(8)], who)
    await world.run_all()
    done = await world.get(made["id"], who)
    counts = done["request_counts"]
    assert done["status"] == "completed" and 0 < counts["completed"] < 8
    assert counts["completed"] + counts["failed"] == 8
    errors = await world.lines(done["error_file_id"], who)
    assert {e["error"]["code"] for e in errors} == {"insufficient_quota"}
    spent = sum(r.cost_nano for r in await world.usage())
    assert 0 < spent <= 0.06 * 1e9


async def test_cancel_keeps_what_finished(world: World) -> None:
    who = await world.key("p")
    made = await world.batch([line(i) for i in range(4)], who)
    r = await world.http.post(f"/v1/batches/{made['id']}/cancel", headers=who)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"  # no worker held it
    errors = await world.lines(r.json()["error_file_id"], who)
    assert [e["error"]["code"] for e in errors] == ["batch_cancelled"] * 4
    await world.run_all()
    assert await world.usage() == []


async def test_expired_lines_end_in_the_error_file(tmp_path: Path) -> None:
    async for world in world_for(tmp_path, BatchSettings(window_s=1)):
        who = await world.key("p")
        made = await world.batch([line(i) for i in range(3)], who)
        await asyncio.sleep(1.1)
        await world.run_all()
        done = await world.get(made["id"], who)
        assert done["status"] == "expired" and done["expired_at"]
        errors = await world.lines(done["error_file_id"], who)
        assert [e["error"]["code"] for e in errors] == ["batch_expired"] * 3


class SlowEngine(FakeEngine):
    """Each answer takes ``seconds``; counts the batch's calls running and handed back."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds, self.running, self.most, self.handed_back = seconds, 0, 0, 0

    async def chat(self, body: Body) -> Body:
        batch = str(body["messages"][-1]["content"]).startswith("hello")
        self.running += batch
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.handed_back += batch
            raise
        finally:
            self.running -= batch
        return await super().chat(body)


async def test_a_batch_fills_an_idle_engine_and_makes_way_for_interactive_traffic(
    tmp_path: Path,
) -> None:
    engine = SlowEngine(0.4)
    settings = BatchSettings(concurrency=1, idle_concurrency=4, quiet_s=0.5)
    async for world in world_for(tmp_path, settings, engine):
        who = await world.key("p")
        made = await world.batch([line(i) for i in range(12)], who)
        worker = world.app.state.services.batch_worker
        assert await worker.claim() == made["id"]
        running = asyncio.create_task(worker.execute(made["id"]))
        await until(lambda: engine.running == 4)  # idle: the whole engine (4 slots)
        body = {"model": MODEL, "messages": [{"role": "user", "content": "interactive"}]}
        asked = asyncio.create_task(world.http.post(CHAT, json=body, headers=who))
        await until(lambda: engine.running <= 1, within=1.0)  # handed back at once
        assert (await asked).status_code == 200
        await running
        await world.app.state.services.accounting.settled()
        done = await world.get(made["id"], who)
        assert done["request_counts"] == {"total": 12, "completed": 12, "failed": 0}
        out = await world.lines(done["output_file_id"], who)
        assert sorted(x["custom_id"] for x in out) == sorted(f"req-{i}" for i in range(12))
        assert engine.most == 4 and engine.handed_back == 3
        rows = [r for r in await world.usage() if r.endpoint == "batch"]
        assert len(rows) == 12  # a line handed back and run again is billed once


async def until(ok: Callable[[], bool], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not ok():
        assert asyncio.get_running_loop().time() < deadline, "not within the time given"
        await asyncio.sleep(0.01)
