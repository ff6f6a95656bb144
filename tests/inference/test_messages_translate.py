"""A Messages request translated onto the core's chat request."""

from __future__ import annotations

from typing import Any

import pytest

from corral.core.errors import InvalidRequestError
from corral.inference.messages.translate import (
    Thinking,
    chat_body,
    to_messages,
    to_thinking,
    to_tool_choice,
    to_tools,
)
from corral.protocol.messages import MessagesRequest

TOOL = {"name": "lookup", "input_schema": {"type": "object"}}
NAMED = {"type": "function", "function": {"name": "lookup"}}


def request(**fields: Any) -> MessagesRequest:
    return MessagesRequest.model_validate(
        {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], **fields}
    )


def _never(signature: str, param: str) -> None:
    raise AssertionError("no thinking to verify")


def test_system_blocks_tool_use_and_tool_results_become_chat_messages() -> None:
    req = request(
        system=[{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                    {"type": "text", "text": "thanks"},
                ],
            },
            {"role": "system", "content": "reminder"},
        ],
    )
    messages = to_messages(req, _never)
    roles = [m["role"] for m in messages]
    assert roles == ["system", "user", "assistant", "tool", "user", "system"]
    assert messages[0]["content"] == "A\nB"
    call = messages[2]["tool_calls"][0]
    assert call["id"] == "toolu_1" and call["function"]["arguments"] == '{"q": 1}'
    assert messages[3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}


def test_server_tools_are_left_out_or_refused() -> None:
    tools = to_tools([TOOL, {"type": "web_search_20250305", "name": "web_search"}], False)
    assert [t["function"]["name"] for t in tools.chat] == ["lookup"]
    assert tools.left_out == ["web_search_20250305"]
    with pytest.raises(InvalidRequestError) as err:
        to_tools([{"type": "bash_20250124", "name": "bash"}], True)
    assert err.value.param == "tools[0].type"


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, ("auto", True)),
        ({"type": "any", "disable_parallel_tool_use": True}, ("required", False)),
        ({"type": "none"}, ("none", True)),
        ({"type": "tool", "name": "lookup"}, (NAMED, True)),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: tuple[Any, bool]) -> None:
    assert to_tool_choice(choice, to_tools([TOOL], False)) == expected


def test_thinking_maps_to_effort_on_reasoning_models_only() -> None:
    enabled = request(max_tokens=8000, thinking={"type": "enabled", "budget_tokens": 5000})
    assert to_thinking(enabled, True) == Thinking("high", True)
    adaptive = request(thinking={"type": "adaptive", "display": "omitted"})
    assert to_thinking(adaptive, True) == Thinking(None, False)
    effort = request(thinking={"type": "adaptive"}, output_config={"effort": "max"})
    assert to_thinking(effort, True).effort == "high"
    assert to_thinking(effort, False).effort is None  # a no-op elsewhere
    with pytest.raises(InvalidRequestError):
        to_thinking(enabled, False)


def test_the_chat_body_carries_sampling_stops_and_structured_output() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    req = request(
        top_k=5,
        stop_sequences=["END"],
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    body = chat_body(req, to_messages(req, _never), to_tools(None, False), Thinking(None, True))
    assert body["top_k"] == 5 and body["stop"] == ["END"] and body["stream"] is True
    assert body["response_format"]["json_schema"]["schema"] == schema
    assert body["max_completion_tokens"] == 100 and "tools" not in body
