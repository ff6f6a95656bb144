"""/v1/responses over a fake engine, on SQLite and PostgreSQL: stored responses belong to
their project, continuations replay the history, streams are stored too."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import openai
import pytest
from pydantic import SecretStr
from sqlalchemy import update

from corral.accounts.keys import ANONYMOUS
from corral.app import create_app
from corral.core.config import Settings
from corral.protocol.responses import ResponseRequest
from corral.storage.tables import StoredResponse
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
    assert [i["content"] for i in items.json()["data"]] == [
        [{"type": "input_text", "text": "hello"}]
    ]
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


HOSTED = [{"type": "web_search", "external_web_access": True}, {"type": "code_interpreter"}]
FUNCTION = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}


async def test_hosted_tools_are_left_out_visibly(
    http: tuple[httpx.AsyncClient, FakeEngine, list[str]],
) -> None:
    client, engine, (a, _) = http
    body = {"model": "fake-model", "input": "hi", "tools": [*HOSTED, FUNCTION]}
    r = await client.post("/v1/responses", json=body, headers=_as(a))
    assert r.status_code == 200, r.text
    assert r.headers["x-corral-tools-ignored"] == "web_search, code_interpreter"
    assert r.json()["tools"] == [FUNCTION]  # the echo lists what was served
    # The constrained pass (the fake's echo says nothing, so an answer in words follows).
    constrained = next(b for b in reversed(engine.bodies) if "response_format" in b)
    offered = [t["function"]["name"] for t in constrained.get("tools") or []]
    system = constrained["messages"][0]["content"]
    assert "lookup" in system and "web_search" not in system and not offered


async def test_an_operator_can_refuse_hosted_tools(tmp_path: Path) -> None:
    from corral.core.config import ResponsesSettings

    strict = ResponsesSettings(refuse_hosted_tools=True)
    settings = migrated(Settings(data_dir=tmp_path, responses=strict))
    app = create_app(settings, fake_registry())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        body = {"model": "fake-model", "input": "hi", "tools": HOSTED}
        r = await client.post("/v1/responses", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools[0].type"


async def test_namespace_tools_are_called_by_their_inner_name(
    http: tuple[httpx.AsyncClient, FakeEngine, list[str]],
) -> None:
    client, engine, (a, _) = http
    engine.reply = '{"tool_calls": [{"name": "crm__find", "arguments": {"q": "x"}}]}'
    namespace = {
        "type": "namespace",
        "name": "crm",
        "description": "The CRM.",
        "tools": [{"type": "function", "name": "find", "parameters": {"type": "object"}}],
    }
    body = {"model": "fake-model", "input": "hi", "tools": [namespace], "tool_choice": "required"}
    r = await client.post("/v1/responses", json=body, headers=_as(a))
    assert r.status_code == 200, r.text
    (call,) = r.json()["output"]
    assert (call["type"], call["name"], call["namespace"]) == ("function_call", "find", "crm")
    # Replayed, the call names its namespace again and the core sees one tool name.
    history = [{"role": "user", "content": "hi"}, call]
    history.append({"type": "function_call_output", "call_id": call["call_id"], "output": "ok"})
    engine.reply = None
    again = await client.post(
        "/v1/responses",
        json={"model": "fake-model", "input": history, "tools": [namespace]},
        headers=_as(a),
    )
    assert again.status_code == 200, again.text
    assert "crm__find(" in engine.bodies[-1]["messages"][2]["content"]


async def test_a_conversation_is_its_projects_own(
    http: tuple[httpx.AsyncClient, FakeEngine, list[str]],
) -> None:
    client, _, (a, b) = http
    conv = (await client.post("/v1/conversations", json={}, headers=_as(a))).json()
    path = f"/v1/conversations/{conv['id']}"
    assert (await client.get(path, headers=_as(a))).status_code == 200
    for method, suffix in (("GET", ""), ("DELETE", ""), ("GET", "/items")):
        r = await client.request(method, path + suffix, headers=_as(b))
        assert r.status_code == 404 and r.json()["error"]["param"] == "conversation_id"
    body = {"model": "fake-model", "input": "hi", "conversation": conv["id"]}
    refused = await client.post("/v1/responses", json=body, headers=_as(b))
    assert refused.status_code == 404 and refused.json()["error"]["param"] == "conversation"
    ok = await client.post("/v1/responses", json=body, headers=_as(a))
    assert ok.status_code == 200 and ok.json()["conversation"] == {"id": conv["id"]}
    items = (await client.get(path + "/items?order=asc", headers=_as(a))).json()["data"]
    assert [i["role"] for i in items] == ["user", "assistant"]
    too_many = {"items": [{"role": "user", "content": str(i)} for i in range(21)]}
    r = await client.post(path + "/items", json=too_many, headers=_as(a))
    assert r.status_code == 400 and r.json()["error"]["param"] == "items"


async def test_input_items_list_a_messages_content_as_parts(tmp_path: Path) -> None:
    """As OpenAI lists them and its SDK reads them; rows stored with a bare string (before
    ``as_items`` gave parts) are listed the same way, and the model read the same text."""
    engine = FakeEngine(context_window=2048)
    app = create_app(migrated(Settings(data_dir=tmp_path)), fake_registry(engine))
    transport = httpx.ASGITransport(app=app)
    http = httpx.AsyncClient(transport=transport, base_url="http://t/v1")
    sdk = openai.AsyncOpenAI(api_key="x", base_url="http://t/v1", http_client=http)
    try:
        first = await sdk.responses.create(model="fake-model", input="hi")
        history = [
            {"role": "developer", "content": "Be brief."},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "hi"},
        ]
        second = await sdk.responses.create(model="fake-model", input=history)
        assert [m["content"] for m in engine.bodies[-1]["messages"]] == [
            "Be brief.",
            "Hello.",
            "hi",
        ]
        async with app.state.services.db.begin() as s:  # as an older row kept it
            old = [{"type": "message", "id": "msg_old", "role": "user", "content": "hi"}]
            await s.execute(
                update(StoredResponse).where(StoredResponse.id == first.id).values(input_items=old)
            )
        (item,) = (await sdk.responses.input_items.list(first.id)).data
        assert item.type == "message" and item.status == "completed"
        assert [(p.type, p.text) for p in item.content] == [("input_text", "hi")]
        listed = (await sdk.responses.input_items.list(second.id, order="asc")).data
        parts = [[(p.type, p.text) for p in i.content] for i in listed]
        assert parts == [
            [("input_text", "Be brief.")],
            [("output_text", "Hello.")],
            [("input_text", "hi")],
        ]
        assert [i.role for i in listed] == ["developer", "assistant", "user"]
    finally:
        await sdk.close()
        await app.state.services.db.close()


async def test_the_prompt_cache_key_reaches_the_engine_as_its_affinity_key(
    http: tuple[httpx.AsyncClient, FakeEngine, list[str]],
) -> None:
    """OpenAI routes requests with one ``prompt_cache_key`` to one machine; an upstream
    pool routes by it too (engines/upstream.py), so it goes with the engine request from
    both dialects. Longer than OpenAI's bound it is a 400 before any work."""
    client, engine, (a, _) = http
    chat = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
    r = await client.post(
        "/v1/chat/completions", json={**chat, "prompt_cache_key": "s-1"}, headers=_as(a)
    )
    assert r.status_code == 200, r.text
    assert engine.bodies[-1]["prompt_cache_key"] == "s-1"
    body = {"model": "fake-model", "input": "hello", "prompt_cache_key": "s-2"}
    assert (await client.post("/v1/responses", json=body, headers=_as(a))).status_code == 200
    assert engine.bodies[-1]["prompt_cache_key"] == "s-2"
    sent = len(engine.bodies)
    long = {**chat, "prompt_cache_key": "k" * 1025}
    r = await client.post("/v1/chat/completions", json=long, headers=_as(a))
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt_cache_key"
    assert len(engine.bodies) == sent


async def test_a_background_response_stopped_before_its_task_ran_gives_back_its_slot(
    db_url: str, tmp_path: Path
) -> None:
    """A background response's stream is admitted (an engine slot, a metering ticket)
    before its task reads it. A shutdown (or a cancel) that stopped the task before its
    first step left that stream never started, and an async generator never started runs
    no cleanup: the slot stayed taken for the process's life (batches then kept to their
    busy share for good: tests/e2e/test_batches.py failed so under two workers, after
    test_responses.py's create-then-cancel)."""
    settings = migrated(Settings(data_dir=tmp_path, database_url=db_url))
    app = create_app(settings, fake_registry(FakeEngine(context_window=2048)))
    services = app.state.services
    req = ResponseRequest.model_validate({"model": "fake-model", "input": "hi", "background": True})
    try:
        p = await services.responses.prepare(req, "-", ANONYMOUS)
        metered = await services.meter.run(ANONYMOUS, p.charge, partial(services.responses.run, p))
        ticket = metered.ticket
        assert services.admission.in_flight == 1 and not ticket.settled
        await services.responses.start_background(p, metered.result)
        del metered
        await services.responses.stop()  # cancels the task before its first step
        for _ in range(3):  # a stream dropped started is closed by the loop's finalizer
            gc.collect()
            await asyncio.sleep(0)
        assert services.admission.in_flight == 0
        assert ticket.settled
    finally:
        await services.db.close()
