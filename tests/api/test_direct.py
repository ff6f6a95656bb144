"""The generation endpoints' direct route table answers as the router would."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from corral.app import create_app
from corral.core.config import Settings
from corral.engines.base import Body
from tests.api.test_app import assert_error, chat
from tests.fakes import FakeEngine, fake_registry, migrated


class BrokenEngine(FakeEngine):
    async def chat(self, body: Body) -> Body:
        raise RuntimeError("the engine fell over")


async def client(tmp_path: Path, engine: FakeEngine) -> httpx.AsyncClient:
    app = create_app(migrated(Settings(data_dir=tmp_path)), fake_registry(engine))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with await client(tmp_path, FakeEngine()) as c:
        yield c


async def test_other_methods_and_schema_still_come_from_the_router(
    http: httpx.AsyncClient,
) -> None:
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
        assert_error(await http.get(path), 405, None)
    paths = (await http.get("/openapi.json")).json()["paths"]
    assert {"/v1/chat/completions", "/v1/completions", "/v1/embeddings"} <= set(paths)


async def test_each_direct_route_answers(http: httpx.AsyncClient) -> None:
    r = await http.post("/v1/chat/completions", json=chat())
    assert r.status_code == 200 and r.json()["object"] == "chat.completion"
    r = await http.post("/v1/completions", json={"model": "fake-model", "prompt": "a b"})
    assert r.status_code == 200 and r.json()["object"] == "text_completion"
    r = await http.post("/v1/embeddings", json={"model": "fake-model", "input": "a b"})
    assert r.status_code == 200 and r.json()["object"] == "list"
    assert "x-request-id" in r.headers
    r = await http.post("/v1/responses", json={"model": "fake-model", "input": "a b"})
    assert r.status_code == 200 and r.json()["object"] == "response"
    body = {"model": "fake-model", "max_tokens": 8, "messages": [{"role": "user", "content": "a"}]}
    r = await http.post("/v1/messages", json=body)
    assert r.status_code == 200 and r.json()["type"] == "message"
    r = await http.post("/v1/messages", json={"model": "fake-model"})
    assert r.status_code == 400 and r.json()["type"] == "error"  # Anthropic's shape
    # Handlers that return a model (the counts) answer with its JSON, as the router does.
    r = await http.post("/v1/responses/input_tokens", json={"model": "fake-model", "input": "a"})
    assert r.status_code == 200 and r.json()["object"] == "response.input_tokens"
    del body["max_tokens"]
    r = await http.post("/v1/messages/count_tokens", json=body)
    assert r.status_code == 200 and r.json()["input_tokens"] > 0


async def test_an_unexpected_error_is_a_logged_500_in_openai_shape(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with await client(tmp_path, BrokenEngine()) as http:
        with caplog.at_level(logging.ERROR, logger="corral.api.errors"):
            r = await http.post("/v1/chat/completions", json=chat())
    assert_error(r, 500, None)
    assert "fell over" not in r.text  # internals stay in the log
    assert any("fell over" in str(rec.exc_info) for rec in caplog.records)


def test_the_table_is_what_the_routers_declare() -> None:
    from corral.api.direct import table
    from corral.api.routes import chat, completions, embeddings, messages, responses

    routes = table(chat.router, completions.router, embeddings.router)
    assert routes == {
        ("POST", "/v1/chat/completions"): chat.create_chat_completion,
        ("POST", "/v1/completions"): completions.create_completion,
        ("POST", "/v1/embeddings"): embeddings.create_embeddings,
    }
    # Paths with parameters stay with the router: a request for the literal template
    # must not reach a handler that takes the parameter.
    assert table(responses.router, messages.router) == {
        ("POST", "/v1/responses"): responses.create_response,
        ("POST", "/v1/responses/input_tokens"): responses.count_input_tokens,
        ("POST", "/v1/messages"): messages.create_message,
        ("POST", "/v1/messages/count_tokens"): messages.count_tokens,
    }
