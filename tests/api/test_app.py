"""The HTTP layer over a fake engine: shapes, errors, SSE framing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from corral.app import create_app
from corral.core.config import LimitSettings, Settings
from tests.fakes import FakeEngine, fake_registry, migrated


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = migrated(Settings(data_dir=tmp_path, limits=LimitSettings(max_body_bytes=4096)))
    app = create_app(settings, fake_registry(FakeEngine(context_window=64)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


def chat(**extra: object) -> dict[str, object]:
    return {"model": "fake-model", "messages": [{"role": "user", "content": "one two"}], **extra}


def assert_error(r: httpx.Response, status: int, param: str | None, code: str | None = None):
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code


async def test_chat_shape(http: httpx.AsyncClient) -> None:
    r = await http.post("/v1/chat/completions", json=chat())
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "fake-model"
    assert body["system_fingerprint"] == "fp_fake"
    assert body["choices"][0]["message"]["content"] == "one two"
    usage = body["usage"]
    assert usage["completion_tokens"] == 2
    assert usage["total_tokens"] == usage["prompt_tokens"] + 2


async def test_sse_framing(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/v1/chat/completions",
        json=chat(stream=True, stream_options={"include_usage": True}),
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [e for e in r.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [orjson.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 2


async def test_models(http: httpx.AsyncClient) -> None:
    r = await http.get("/v1/models")
    assert [m["id"] for m in r.json()["data"]] == ["fake-model"]
    r = await http.get("/v1/models/fake-model")
    assert r.json()["context_window"] == 64
    assert_error(await http.get("/v1/models/other"), 404, "model", "model_not_found")


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": -1}, "temperature"),
        ({"n": 99}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"top_logprobs": 21}, "top_logprobs"),
        ({"chat_template": "x"}, "chat_template"),
        ({"frobnicate": True}, "frobnicate"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ],
)
async def test_bad_params(http: httpx.AsyncClient, extra: dict[str, object], param: str):
    assert_error(await http.post("/v1/chat/completions", json=chat(**extra)), 400, param)


async def test_body_limits(http: httpx.AsyncClient) -> None:
    big = chat(messages=[{"role": "user", "content": "x" * 5000}])
    assert_error(
        await http.post("/v1/chat/completions", json=big), 413, "body", "request_too_large"
    )
    r = await http.post("/v1/chat/completions", content=b"{nope")
    assert_error(r, 400, None, "invalid_json")
    assert_error(await http.post("/v1/chat/completions", content=b"[1]"), 400, None)


async def test_context_window(http: httpx.AsyncClient) -> None:
    r = await http.post("/v1/chat/completions", json=chat(max_tokens=63))
    assert_error(r, 400, "messages", "context_length_exceeded")
    assert (await http.post("/v1/chat/completions", json=chat(max_tokens=10))).status_code == 200


async def test_health_ready_metrics(http: httpx.AsyncClient) -> None:
    assert (await http.get("/health")).json() == {"status": "ok"}
    assert (await http.get("/ready")).status_code == 200
    assert "corral_engine_slots_busy" in (await http.get("/metrics")).text


async def test_unknown_route(http: httpx.AsyncClient) -> None:
    assert_error(await http.get("/v2/things"), 404, None)


async def test_overload_answers_503_at_once(tmp_path: Path) -> None:
    settings = migrated(Settings(data_dir=tmp_path, limits=LimitSettings(max_in_flight=1)))
    app = create_app(settings, fake_registry(FakeEngine(context_window=64)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        services = app.state.services
        services.admission.enter()  # one request already in flight
        r = await http.post("/v1/chat/completions", json=chat())
        assert_error(r, 503, None, "server_overloaded")
        assert r.headers["retry-after"] == "1"
        services.admission.leave()
        assert (await http.post("/v1/chat/completions", json=chat())).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/v1/organization/usage/completions",
        "/v1/organization/usage/vector_stores",
        "/v1/organization/costs",
    ],
)
@pytest.mark.parametrize("start", ["99999999999999999", "-1", str(2**70)])
async def test_reports_refuse_out_of_range_start_time(
    http: httpx.AsyncClient, path: str, start: str
) -> None:
    # Issue 21: huge (OverflowError) and negative (ValueError) start_time answered 500.
    assert_error(await http.get(path, params={"start_time": start}), 400, "start_time")
    ok = await http.get(path, params={"start_time": "0", "end_time": str(2**70)})
    assert ok.status_code == 200, ok.text


async def test_key_expiry_out_of_range_is_400(http: httpx.AsyncClient) -> None:
    project = (await http.post("/v1/organization/projects", json={"name": "p"})).json()
    path = f"/v1/organization/projects/{project['id']}/api_keys"
    assert_error(await http.post(path, json={"expires_at": 10**17}), 400, "expires_at")


async def test_deeply_nested_json_is_refused_before_it_is_parsed(http: httpx.AsyncClient) -> None:
    # Issue 21: a tool's parameters 1,000 deep passed orjson (limit 1,024) and then
    # json.dumps raised RecursionError: a 500.
    parameters = b'{"a":' * 600 + b"1" + b"}" * 600  # the fixture's body limit is 4 KiB
    raw = (
        b'{"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "tools": '
        b'[{"type": "function", "function": {"name": "f", "parameters": ' + parameters + b"}}]}"
    )
    r = await http.post("/v1/chat/completions", content=raw)
    assert_error(r, 400, None, "json_too_deep")
