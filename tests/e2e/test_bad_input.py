"""Each bad input gets OpenAI's error shape with the right status, before engine work."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import anthropic
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
    # Anthropic's words: the field's dotted location, then pydantic's message
    assert r.json()["error"]["message"] == "max_tokens: Input should be a valid integer"


OPENAI_WORDS: list[tuple[dict[str, Any], str, str, str]] = [
    ({"messages": [{"content": "x"}]}, "messages[0].role", "missing_required_parameter",
     "Missing required parameter: 'messages[0].role'."),
    ({"temperature": 3}, "temperature", "decimal_above_max_value",
     "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 3.0 "
     "instead."),
    ({"messages": []}, "messages", "empty_array",
     "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an "
     "empty array instead."),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role", "invalid_value",
     "Invalid value: 'wizard'. Supported values are: 'system', 'developer', 'user', "
     "'assistant', and 'tool'."),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "param", "code", "message"), OPENAI_WORDS)
def test_a_bad_field_is_said_in_openais_words(
    client: openai.OpenAI, extra: dict[str, Any], param: str, code: str, message: str
) -> None:
    """The message, param and code OpenAI's API answers the same body with."""
    body: dict[str, Any] = {"model": MODEL, "messages": MSGS, **extra}
    with pytest.raises(openai.BadRequestError) as err:
        client.post("/chat/completions", body=body, cast_to=object)
    error = err.value.body
    assert isinstance(error, dict)
    assert (error["param"], error["code"], error["message"]) == (param, code, message)


BAD_RESPONSES_TOOLS: list[tuple[dict[str, Any], str, str]] = [
    ({"type": "function"}, "tools[0].name", "missing_required_parameter"),
    ({"name": "f", "parameters": {}}, "tools[0].type", "missing_required_parameter"),
    ({"type": "function", "name": "f", "parameters": "x"}, "tools[0].parameters", "invalid_type"),
    ({"type": "function", "name": "f", "strict": "yes"}, "tools[0].strict", "invalid_type"),
    ({"type": "function", "name": "a.b"}, "tools[0].name", "invalid_value"),
    ({"type": "namespace", "name": "ns", "tools": "x"}, "tools[0].tools", "invalid_type"),
    ({"type": "namespace", "name": "ns", "tools": [5]}, "tools[0].tools[0]", "invalid_type"),
    (
        {"type": "namespace", "name": "ns", "tools": [{"type": "function"}]},
        "tools[0].tools[0].name",
        "missing_required_parameter",
    ),
    ({"type": "custom", "description": "x"}, "tools[0].name", "missing_required_parameter"),
    (
        {"type": "function", "name": "f", "parameters": {"type": "objekt"}},
        "tools[0].parameters",
        "invalid_function_parameters",
    ),
]


@pytest.mark.parametrize(("tool", "param", "code"), BAD_RESPONSES_TOOLS)
def test_a_bad_responses_tool_is_a_400_naming_its_field(
    client: openai.OpenAI, tool: dict[str, Any], param: str, code: str
) -> None:
    """A tool the model would be offered is checked field by field (a nameless function
    was once offered as "None"; a namespace of non-objects was a 500)."""
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, input="hi", tools=[tool])  # type: ignore[list-item]
    error = err.value.body
    assert isinstance(error, dict)
    assert (error["param"], error["code"]) == (param, code), error


BAD_MESSAGES_TOOLS: list[tuple[dict[str, Any], str]] = [
    ({"input_schema": {"type": "object"}}, "tools.0.custom.name: Field required"),
    ({"name": "f"}, "tools.0.custom.input_schema: Field required"),
    ({"name": "f", "input_schema": {}}, "tools.0.custom.input_schema.type: Field required"),
    (
        {"name": "f", "input_schema": {"type": "object"}, "description": 5},
        "tools.0.custom.description: Input should be a valid string",
    ),
    (
        {"name": "a.b", "input_schema": {"type": "object"}},
        "tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'",
    ),
    (
        {"name": "f", "input_schema": {"type": "object", "required": "x"}},
        "tools.0.custom.input_schema: JSON schema is invalid. It must match JSON Schema draft "
        "2020-12 (https://json-schema.org/draft/2020-12). Learn more about tool use at "
        "https://docs.anthropic.com/en/docs/tool-use.",
    ),
]


@pytest.mark.parametrize(("tool", "message"), BAD_MESSAGES_TOOLS)
def test_a_bad_messages_tool_is_said_in_anthropics_words(
    live_server: LiveServer, tool: dict[str, Any], message: str
) -> None:
    claude = anthropic.Anthropic(base_url=live_server.url, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as err:
        claude.messages.create(model=MODEL, max_tokens=8, messages=MSGS, tools=[tool])  # type: ignore[arg-type, list-item]
    assert err.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
    }


def test_a_chat_tool_whose_parameters_are_no_json_schema_is_refused(
    client: openai.OpenAI,
) -> None:
    """OpenAI's words, those of Python's jsonschema (its metaschema, draft 2020-12)."""
    tool = {"type": "function", "function": {"name": "f", "parameters": {"properties": 7}}}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=MSGS, tools=[tool])  # type: ignore[arg-type, list-item]
    assert err.value.body == {
        "message": "Invalid schema for function 'f': 7 is not of type 'object'.",
        "type": "invalid_request_error",
        "param": "tools[0].function.parameters",
        "code": "invalid_function_parameters",
    }


def test_a_messages_tool_name_of_128_characters_is_served(live_server: LiveServer) -> None:
    """Anthropic allows 128 characters where OpenAI allows 64: the core takes it."""
    claude = anthropic.Anthropic(base_url=live_server.url, api_key="unused", max_retries=0)
    tool = {"name": "a" * 128, "input_schema": {"type": "object", "properties": {}}}
    message = claude.messages.create(model=MODEL, max_tokens=4, messages=MSGS, tools=[tool])  # type: ignore[arg-type, list-item]
    assert message.type == "message"


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


# A full request of each dialect: items, content parts, tool calls and results, tools,
# tool_choice, formats. Every value in it is replaced, one at a time, by each JSON type.
FULL: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {
        "max_tokens": 2,
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {"name": "f", "parameters": {"type": "object", "properties": {}}},
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "stream_options": {"include_usage": True},
    },
    "/v1/responses": {
        "max_output_tokens": 2,
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        ],
        "tools": [
            {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}},
            {
                "type": "custom",
                "name": "g",
                "format": {"type": "grammar", "syntax": "regex", "definition": "a+"},
            },
        ],
        "tool_choice": {"type": "function", "name": "f"},
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
    },
    "/v1/messages": {
        "max_tokens": 2,
        "system": [{"type": "text", "text": "be brief"}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "ok"}],
                    }
                ],
            },
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {}}}],
        "tool_choice": {"type": "auto"},
    },
}
WRONG: list[Any] = [None, 7, "s", [], {}, [{}]]


def _paths(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if at:
        yield at
    children = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in children:
        yield from _paths(child, (*at, key))


def _replaced(body: dict[str, Any], at: tuple[Any, ...], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    holder = body
    for key in at[:-1]:
        holder = holder[key]
    holder[at[-1]] = value
    return body


@pytest.mark.parametrize("path", list(FULL))
def test_any_value_of_a_full_request_replaced_by_any_json_type_is_never_a_500(
    live_server: LiveServer, path: str
) -> None:
    """Each value of a full request (the request itself is answered 200) replaced by
    null, a number, a string, an array or an object: a 200 or a 4xx in the dialect's
    shape, never a 5xx (a list where an item's `role` or a block's `type` was read, or a
    number where a tool's `properties` was, were 500s)."""
    body = {"model": MODEL, **FULL[path]}
    anthropic_shape = path == "/v1/messages"
    with httpx.Client(base_url=live_server.url, timeout=60) as http:
        assert http.post(path, json=body).status_code == 200
        for at in _paths(FULL[path]):
            for value in WRONG:
                r = http.post(path, json=_replaced(body, at, value))
                where = f"{at} = {value!r}: {r.status_code} {r.text[:300]}"
                assert r.status_code < 500, where
                if r.status_code >= 400:
                    error = r.json()["error"]
                    assert error["type"] == "invalid_request_error", where
                    assert error["message"], where
                    assert ("param" not in error) == anthropic_shape, where
