"""A JSON answer asked for beside tools (`response_format` and `auto`): the tools'
grammar carries the request's schema in its answer branch, and the answer's text is the
JSON object the model wrote, streamed or whole."""

from __future__ import annotations

import json

from corral.inference.tool_stream import ToolStream
from corral.inference.tools import in_words, parse_output, plan_tools
from corral.protocol.chat import ChatCompletionRequest

SCHEMA = {
    "type": "object",
    "properties": {"code": {"type": "string"}},
    "required": ["code"],
    "additionalProperties": False,
}
TOOL = {
    "type": "function",
    "function": {
        "name": "vault_code",
        "description": "Look up the access code of a vault.",
        "parameters": {"type": "object", "properties": {"vault": {"type": "string"}}},
    },
}


def request(fmt: dict[str, object] | None) -> ChatCompletionRequest:
    body: dict[str, object] = {
        "model": "m",
        "messages": [{"role": "user", "content": "What is the access code of the vault?"}],
        "tools": [TOOL],
    }
    if fmt is not None:
        body["response_format"] = fmt
    return ChatCompletionRequest.model_validate(body)


def answer_branch(plan_format: dict[str, object]) -> object:
    schema = plan_format["json_schema"]["schema"]  # type: ignore[index]
    return schema["anyOf"][1]["properties"]["content"]  # type: ignore[index]


def test_the_answer_branch_is_the_requests_schema() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "A", "schema": SCHEMA}}
    plan = plan_tools(request(fmt))
    assert plan.mode == "auto" and plan.response_format is not None
    assert answer_branch(plan.response_format) == SCHEMA
    assert answer_branch(plan_tools(request({"type": "json_object"})).response_format or {}) == {
        "type": "object"
    }
    plain = plan_tools(request(None))
    assert answer_branch(plain.response_format or {}) == {"type": "string"}
    # An answer asked again in words keeps the request's own format.
    words = in_words({"messages": [], "response_format": plan.response_format}, plan, {})
    assert words is not None and words["response_format"] == fmt


def test_a_json_answer_is_its_text_whole_and_streamed() -> None:
    text = '{"content": {"code": "Zan\\"zibar", "n": [1, {"x": 2}]}}'
    whole = parse_output(text)
    assert whole.tool_calls is None and whole.content is not None
    assert json.loads(whole.content) == {"code": 'Zan"zibar', "n": [1, {"x": 2}]}
    stream = ToolStream()
    streamed = "".join(p.text for i in range(0, len(text), 3) for p in stream.feed(text[i : i + 3]))
    assert streamed == whole.content
    # A call is still a call; words are still words.
    call = parse_output('{"tool_calls": [{"name": "vault_code", "arguments": {"vault": "n"}}]}')
    assert call.tool_calls and call.tool_calls[0].function.name == "vault_code"
    assert parse_output('{"content": "hi"}').content == "hi"
