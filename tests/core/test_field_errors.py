"""Pydantic's validation errors in OpenAI's and Anthropic's words, from the real wire
models: the wording each vendor's API answers with (quoted in public issue threads)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from corral.core.field_errors import FieldError, field_loc, invalid_field
from corral.protocol.chat import ChatCompletionRequest
from corral.protocol.messages import ClientToolParam, MessagesRequest

MSGS = [{"role": "user", "content": "hi"}]


def said(model: type[BaseModel], data: dict[str, Any], prefix: tuple[Any, ...] = ()) -> FieldError:
    with pytest.raises(ValidationError) as err:
        model.model_validate(data, strict=True)
    return invalid_field(err.value.errors(), data, prefix)


CHAT: list[tuple[dict[str, Any], str, str, str]] = [
    (
        {"model": "m"},
        "messages",
        "missing_required_parameter",
        "Missing required parameter: 'messages'.",
    ),
    (
        {"model": "m", "messages": [{"content": "x"}]},
        "messages[0].role",
        "missing_required_parameter",
        "Missing required parameter: 'messages[0].role'.",
    ),
    (
        {"model": "m", "messages": [{"role": "user"}]},
        "messages[0].content",  # not messages[0].user.content: the tag is no level
        "missing_required_parameter",
        "Missing required parameter: 'messages[0].content'.",
    ),
    (
        {"model": "m", "messages": [{"role": "wizard", "content": "x"}]},
        "messages[0].role",
        "invalid_value",
        "Invalid value: 'wizard'. Supported values are: 'system', 'developer', 'user', "
        "'assistant', and 'tool'.",
    ),
    (
        {"model": "m", "messages": MSGS, "temperature": 3},
        "temperature",
        "decimal_above_max_value",
        "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got "
        "3.0 instead.",
    ),
    (
        {"model": "m", "messages": MSGS, "max_tokens": 0},
        "max_tokens",
        "integer_below_min_value",
        "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 "
        "instead.",
    ),
    (
        {"model": "m", "messages": []},
        "messages",
        "empty_array",
        "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an "
        "empty array instead.",
    ),
    (
        {"model": "m", "messages": MSGS, "reasoning_effort": "huge"},
        "reasoning_effort",
        "invalid_value",
        "Invalid value: 'huge'. Supported values are: 'low', 'medium', and 'high'.",
    ),
    (
        {
            "model": "m",
            "messages": MSGS,
            "tools": [{"type": "function", "function": {"name": "a b"}}],
        },
        "tools[0].function.name",
        "invalid_value",
        "Invalid 'tools[0].function.name': string does not match pattern. Expected a string "
        "that matches the pattern '^[a-zA-Z0-9_-]+$'.",
    ),
    (
        {
            "model": "m",
            "messages": MSGS,
            "tools": [{"type": "function", "function": {"name": "a" * 65}}],
        },
        "tools[0].function.name",
        "string_above_max_length",
        "Invalid 'tools[0].function.name': string too long. Expected a string with maximum "
        "length 64, but got a string with length 65 instead.",
    ),
    (
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
        "messages[0].content[0].text",
        "invalid_type",
        "Invalid type for 'messages[0].content[0].text': expected a string, but got an "
        "integer instead.",
    ),
    (
        {"model": "m", "messages": MSGS, "stop": 5},
        "stop",
        "invalid_type",
        "Invalid type for 'stop': expected a string or an array, but got an integer instead.",
    ),
]


@pytest.mark.parametrize(("data", "param", "code", "message"), CHAT)
def test_a_chat_request_is_refused_in_openais_words(
    data: dict[str, Any], param: str, code: str, message: str
) -> None:
    error = said(ChatCompletionRequest, data)
    assert (error.param, error.code, error.message) == (param, code, message)


def test_the_core_takes_longer_function_names_than_the_chat_api() -> None:
    """Messages (128 characters) and Responses namespaces ("<ns>__<name>") hand the core
    longer names than OpenAI's 64; only the core's own requests say so."""
    body = {
        "model": "m",
        "messages": MSGS,
        "tools": [{"type": "function", "function": {"name": "a" * 130}}],
    }
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate(body)
    ChatCompletionRequest.model_validate(body, context={"function_name_max": 256})


ANTHROPIC: list[tuple[type[BaseModel], dict[str, Any], tuple[Any, ...], str]] = [
    (MessagesRequest, {"model": "m", "messages": MSGS}, (), "max_tokens: Field required"),
    (
        MessagesRequest,
        {"model": "m", "messages": MSGS, "max_tokens": "5"},
        (),
        "max_tokens: Input should be a valid integer",
    ),
    (
        ClientToolParam,
        {"name": "a.b", "input_schema": {"type": "object"}},
        ("tools", 0, "custom"),
        "tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'",
    ),
    (
        ClientToolParam,
        {"name": "f", "input_schema": {}},
        ("tools", 1, "custom"),
        "tools.1.custom.input_schema.type: Field required",
    ),
    (
        ClientToolParam,
        {"name": "f", "input_schema": "x"},
        ("tools", 0, "custom"),
        "tools.0.custom.input_schema: Input should be a valid dictionary",
    ),
]


@pytest.mark.parametrize(("model", "data", "prefix", "message"), ANTHROPIC)
def test_a_messages_request_is_refused_in_anthropics_words(
    model: type[BaseModel], data: dict[str, Any], prefix: tuple[Any, ...], message: str
) -> None:
    assert said(model, data, prefix).anthropic_message == message


def test_a_tag_named_like_its_field_is_one_level() -> None:
    """A discriminated union whose tag is also its field (``{"type": "text", "text": …}``)
    puts the name twice in pydantic's location; the request has it once."""
    error = {"type": "string_type", "loc": ("input", 0, "text", "text"), "msg": "x", "input": 5}
    data = {"input": [{"type": "text", "text": 5}]}
    assert invalid_field([error], data).param == "input[0].text"


@pytest.mark.parametrize(
    ("loc", "data", "param"),
    [
        (
            ("input_messages", "template", "foo"),
            {"input_messages": {"type": "template", "template": [], "foo": 1}},
            ("input_messages", "foo"),
        ),
        (
            ("input_messages", "template", "template", 0, "role"),
            {"input_messages": {"type": "template", "template": [{"role": 5}]}},
            ("input_messages", "template", 0, "role"),
        ),
        (("metadata", "Env"), {"metadata": {"Env": 5}}, ("metadata", "Env")),  # a key, no tag
        (
            ("tools", 0, "function", "name"),
            {"tools": [{"type": "function", "function": {"name": "a b"}}]},
            ("tools", 0, "function", "name"),  # a field named like the type is a field
        ),
    ],
)
def test_a_tag_is_told_from_a_field_by_the_data(
    loc: tuple[Any, ...], data: dict[str, Any], param: tuple[Any, ...]
) -> None:
    assert field_loc({"loc": loc}, data) == param


def test_anthropics_member_is_in_its_words_only() -> None:
    data = {"name": "a.b", "input_schema": {"type": "object"}}
    with pytest.raises(ValidationError) as err:
        ClientToolParam.model_validate(data, strict=True)
    error = invalid_field(err.value.errors(), data, ("tools", 0), member="custom")
    assert error.param == "tools[0].name"
    assert error.anthropic_message.startswith("tools.0.custom.name: String should match")
