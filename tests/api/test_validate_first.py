"""A request refused as invalid costs its caller nothing: no rate-limit slot, no budget
reservation, no usage row (each generation service's ``prepare`` runs before the meter)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from corral.accounts.metering import Meter
from corral.app import create_app
from corral.core.config import Settings
from corral.storage.db import Database
from corral.storage.tables import RateWindow, Reservation, Spend, Usage
from tests.fakes import FakeEngine, fake_registry, migrated

ADMIN = "admin-key-for-tests-0123456789abcdef"
MODEL = "priced-model"
# Priced, so a reservation would hold money.
PRICES = {"price_input_per_m": 1.0, "price_output_per_m": 2.0}
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


def _chat(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **extra}


# Each is refused by a service's own checks (not by the wire model's parsing).
INVALID: list[tuple[str, dict[str, Any], int]] = [
    ("/v1/chat/completions", _chat(not_a_field=1), 400),
    ("/v1/chat/completions", _chat(tool_choice="required"), 400),  # no tools
    (
        "/v1/chat/completions",
        _chat(tools=[TOOL], tool_choice={"type": "function", "function": {"name": "nope"}}),
        400,
    ),
    ("/v1/chat/completions", _chat(n=99), 400),
    ("/v1/chat/completions", _chat(max_tokens=10_000), 400),  # over the context window
    ("/v1/chat/completions", {**_chat(), "model": "no-such-model"}, 404),
    ("/v1/completions", {"model": MODEL, "prompt": "x", "suffix": "y"}, 400),
    ("/v1/embeddings", {"model": MODEL, "input": ""}, 400),
    ("/v1/embeddings", {"model": MODEL, "input": "x", "dimensions": 8}, 400),
    ("/v1/responses", {"model": MODEL, "input": "x", "not_a_field": 1}, 400),
    ("/v1/responses", {"model": MODEL, "input": [{"type": "bogus"}]}, 400),
    ("/v1/responses", {"model": MODEL, "input": "x", "previous_response_id": "resp_x"}, 404),
    ("/v1/messages", {**_chat(), "max_tokens": 8, "container": "c"}, 400),
    ("/v1/messages", {**_chat(), "max_tokens": 8, "tool_choice": {"type": "any"}}, 400),
    ("/v1/messages", {**_chat(), "max_tokens": 8, "model": "no-such-model"}, 404),
    ("/v1/messages", {**_chat(), "max_tokens": 8, "thinking": {"type": "enabled"}}, 400),
]


@pytest.fixture
async def http(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    settings = migrated(
        Settings(data_dir=tmp_path, database_url=db_url, admin_key=SecretStr(ADMIN))
    )
    app = create_app(settings, fake_registry(FakeEngine(context_window=256), MODEL, **PRICES))
    admin = {"Authorization": f"Bearer {ADMIN}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        body = {"name": "p", "rpm": 3, "budget_usd": 1.0}
        project = (await client.post("/v1/organization/projects", json=body, headers=admin)).json()
        path = f"/v1/organization/projects/{project['id']}/api_keys"
        key = (await client.post(path, json={"rpm": 3}, headers=admin)).json()["value"]
        client.headers["Authorization"] = f"Bearer {key}"
        try:
            yield client, project["id"]
        finally:
            await app.state.services.db.close()


async def _counts(db_url: str, project_id: str) -> dict[str, int]:
    db = Database(db_url)
    try:
        async with db.session() as s:
            reserved = await s.scalar(
                select(func.coalesce(func.sum(Spend.reserved_nano), 0)).where(
                    Spend.project_id == project_id
                )
            )
            return {
                "rate_window_requests": await s.scalar(
                    select(func.coalesce(func.sum(RateWindow.requests), 0))
                ),
                "reservations": await s.scalar(select(func.count()).select_from(Reservation)),
                "reserved_nano": int(reserved or 0),
                "usage_rows": await s.scalar(select(func.count()).select_from(Usage)),
            }
    finally:
        await db.close()


async def test_an_invalid_request_costs_nothing(
    http: tuple[httpx.AsyncClient, str], db_url: str
) -> None:
    client, project_id = http
    for path, body, status in INVALID:
        r = await client.post(path, json=body)
        assert r.status_code == status, (path, body, r.text)
        if path == "/v1/messages":  # Anthropic's shape
            assert r.json()["type"] == "error" and set(r.json()["error"]) == {"type", "message"}
        else:
            assert set(r.json()["error"]) == {"message", "type", "param", "code"}
        assert "x-ratelimit-remaining-requests" not in r.headers
    nothing = {"rate_window_requests": 0, "reservations": 0, "reserved_nano": 0, "usage_rows": 0}
    assert await _counts(db_url, project_id) == nothing
    # The key's three requests a minute are all still there, and then spent: the
    # window counts valid requests (so the zeros above are not a meter that is off).
    assert (await client.post("/v1/chat/completions", json=_chat())).status_code == 200
    ok = await client.post("/v1/responses", json={"model": MODEL, "input": "hi"})
    assert ok.status_code == 200, ok.text
    ok = await client.post("/v1/messages", json={**_chat(), "max_tokens": 8})
    assert ok.status_code == 200, ok.text
    assert (await client.post("/v1/chat/completions", json=_chat())).status_code == 429
    services = client._transport.app.state.services  # type: ignore[attr-defined]
    await services.accounting.settled()
    counts = await _counts(db_url, project_id)
    assert counts["rate_window_requests"] >= 3 and counts["usage_rows"] == 3
    db = Database(db_url)
    try:
        async with db.session() as s:
            endpoints = set((await s.scalars(select(Usage.endpoint))).all())
    finally:
        await db.close()
    assert endpoints == {"chat", "responses", "messages"}
    assert isinstance(services.meter, Meter)
