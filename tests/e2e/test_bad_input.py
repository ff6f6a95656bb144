"""Each bad input gets OpenAI's error shape with the right status, before engine work."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.conftest import MODEL, LiveServer

pytestmark = pytest.mark.slow

MSGS = [{"role": "user", "content": "hi"}]

BAD_CHAT: list[tuple[dict[str, Any], str | None]] = [
    ({"temperature": -0.5}, "temperature"),
    ({"temperature": 3}, "temperature"),
    ({"n": 1000}, "n"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": -5}, "max_tokens"),
    ({"top_logprobs": 21, "logprobs": True}, "top_logprobs"),
    ({"max_tokens": "ten"}, "max_tokens"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0]"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"chat_template": "{{ 7*7 }}"}, "chat_template"),
    ({"unknown_argument": 1}, "unknown_argument"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"logit_bias": {"hello": 5}}, "logit_bias"),
]


@pytest.mark.parametrize(("extra", "param"), BAD_CHAT)
def test_bad_chat_params(client: openai.OpenAI, extra: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=MSGS, extra_body=extra)  # type: ignore[arg-type]
    error = err.value.body
    assert isinstance(error, dict)
    assert error["type"] == "invalid_request_error"
    assert error["param"] is not None and error["param"].startswith(param), error
    assert error["message"]


WRONG_TYPES: list[tuple[str, dict[str, Any], str, str]] = [
    ("/v1/chat/completions", {"messages": MSGS, "max_tokens": "5"}, "max_tokens", "a string"),
    ("/v1/chat/completions", {"messages": MSGS, "n": 1.5}, "n", "a decimal number"),
    ("/v1/chat/completions", {"messages": MSGS, "stream": "yes"}, "stream", "a string"),
    ("/v1/responses", {"input": "hi", "max_output_tokens": "16"}, "max_output_tokens", "a string"),
    ("/v1/completions", {"prompt": "hi", "max_tokens": True}, "max_tokens", "a boolean"),
    ("/v1/chat/completions", {"messages": MSGS, "stop": 5}, "stop", "an integer"),
]


@pytest.mark.parametrize(("path", "body", "param", "got"), WRONG_TYPES)
def test_a_wrong_json_type_is_refused_as_openai_does(
    live_server: LiveServer, path: str, body: dict[str, Any], param: str, got: str
) -> None:
    """OpenAI answers "Invalid type for 'max_tokens': expected an integer, but got a
    string instead." (code ``invalid_type``); corral once read "5" as 5."""
    r = httpx.post(live_server.url + path, json={"model": MODEL, **body})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["param"], error["code"]) == (param, "invalid_type")
    assert error["message"].startswith(f"Invalid type for '{param}': expected ")
    assert error["message"].endswith(f", but got {got} instead.")


def test_a_wrong_json_type_is_refused_in_anthropics_shape(live_server: LiveServer) -> None:
    body = {"model": MODEL, "max_tokens": "16", "messages": MSGS}
    r = httpx.post(live_server.url + "/v1/messages", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert "'max_tokens'" in r.json()["error"]["message"]


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-nope", messages=MSGS)  # type: ignore[arg-type]
    assert err.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-nope")


def test_context_length_exceeded(client: openai.OpenAI) -> None:
    long = "hello " * 7000
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": long}], max_tokens=2000
        )
    assert err.value.body["code"] == "context_length_exceeded"  # type: ignore[index]


def test_prompt_alone_over_context(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "word " * 9000}]
        )
    assert err.value.body["code"] == "context_length_exceeded"  # type: ignore[index]


def test_malformed_json(live_server: LiveServer) -> None:
    r = httpx.post(
        live_server.url + "/v1/chat/completions",
        content=b'{"model": "x", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_twenty_megabyte_body(live_server: LiveServer) -> None:
    body = b'{"model": "%s", "messages": [{"role": "user", "content": "' % MODEL.encode()
    body += b"a" * (20 * 1024 * 1024) + b'"}]}'
    r = httpx.post(live_server.url + "/v1/chat/completions", content=body, timeout=30)
    assert r.status_code == 413  # HTTP's Content Too Large (was 400)
    assert r.json()["error"]["code"] == "request_too_large"


def test_twenty_megabyte_chunked_body(live_server: LiveServer) -> None:
    def chunks() -> Any:
        for _ in range(20):
            yield b"a" * (1024 * 1024)

    r = httpx.post(live_server.url + "/v1/chat/completions", content=chunks(), timeout=30)
    assert r.status_code == 413  # HTTP's Content Too Large (was 400)
    assert r.json()["error"]["code"] == "request_too_large"


def test_unknown_route(live_server: LiveServer) -> None:
    r = httpx.post(live_server.url + "/v1/nope", json={})
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_bad_json_schema_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model=MODEL,
            messages=MSGS,
            max_tokens=5,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "no-such-type"}},
            },
        )


def test_bad_stream_request_is_an_http_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model=MODEL,
            messages=MSGS,
            max_tokens=5,
            stream=True,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "no-such-type"}},
            },
        )
