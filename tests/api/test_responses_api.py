"""/v1/responses over a fake engine, on SQLite and PostgreSQL: stored responses belong to
their project, continuations replay the history, streams are stored too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from corral.app import create_app
from corral.core.config import Settings
from tests.fakes import FakeEngine, fake_registry, migrated

ADMIN = "admin-key-for-tests-0123456789abcdef"


@pytest.fixture
async def http(
    db_url: str, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, FakeEngine, list[str]]]:
    key = SecretStr(ADMIN)
    settings = migrated(Settings(data_dir=tmp_path, database_url=db_url, admin_key=key))
    engine = FakeEngine(context_window=2048)
    app = create_app(settings, fake_registry(engine))
    admin = {"Authorization": f"Bearer {ADMIN}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        keys = []
        for name in ("a", "b"):
            r = await client.post("/v1/organization/projects", json={"name": name}, headers=admin)
            path = f"/v1/organization/projects/{r.json()['id']}/api_keys"
            keys.append((await client.post(path, json={}, headers=admin)).json()["value"])
        try:
            yield client, engine, keys
        finally:
            await app.state.services.db.close()


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_a_stored_response_is_its_projects_own(
    http: tuple[httpx.AsyncClient, FakeEngine, list[str]],
) -> None:
    client, _, (a, b) = http
    body = {"model": "fake-model", "input": "hello"}
    r = await client.post("/v1/responses", json=body, headers=_as(a))
    assert r.status_code == 200, r.text
    rid = r.json()["id"]
    assert (await client.get(f"/v1/responses/{rid}", headers=_as(a))).json()["id"] == rid
    for method in ("GET", "DELETE"):
        other = await client.request(method, f"/v1/responses/{rid}", headers=_as(b))
        assert other.status_code == 404 and other.json()["error"]["param"] == "response_id"
    body = {"model": "fake-model", "input": "more", "previous_response_id": rid}
    refused = await client.post("/v1/responses", json=body, headers=_as(b))
    assert refused.status_code == 404
    assert refused.json()["error"]["param"] == "previous_response_id"
    items = await client.get(f"/v1/responses/{rid}/input_items", headers=_as(a))
    assert [i["content"] for i in items.json()["data"]] == ["hello"]
    assert (await client.delete(f"/v1/responses/{rid}", headers=_as(a))).json()["deleted"]
    assert (await client.get(f"/v1/responses/{rid}", headers=_as(a))).status_code == 404


async def test_a_continuation_replays_input_and_output(
    http: tuple[httpx.AsyncClient, FakeEngine, list[str]],
) -> None:
    client, engine, (a, _) = http
    first = await client.post(
        "/v1/responses",
        json={"model": "fake-model", "input": "first words", "stream": True},
        headers=_as(a),
    )
    assert first.status_code == 200 and "event: response.completed" in first.text
    rid = (
        next(
            line for line in first.text.splitlines() if line.startswith("data:") and "resp_" in line
        )
        .split('"id":"')[1]
        .split('"')[0]
    )
    second = await client.post(
        "/v1/responses",
        json={"model": "fake-model", "input": "second words", "previous_response_id": rid},
        headers=_as(a),
    )
    assert second.status_code == 200, second.text
    messages = engine.bodies[-1]["messages"]
    # The fake answers with the last message: the first answer was "first words".
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    contents = [m["content"].strip() for m in messages]
    assert contents == ["first words", "first words", "second words"]
