"""tool_choice semantics hold on the embedded model, whose template knows no tools."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tests.conftest import MODEL
from tests.e2e.conftest import SYSTEM

pytestmark = pytest.mark.slow

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city", "unit"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a timezone.",
        "parameters": {
            "type": "object",
            "properties": {"tz": {"type": "string"}},
            "required": ["tz"],
        },
    },
}
TOOLS = [WEATHER, TIME]
PARAMS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
MESSAGES = [SYSTEM, {"role": "user", "content": "What is the weather in Paris?"}]


def check_calls(message: object, allowed: set[str]) -> None:
    calls = message.tool_calls  # type: ignore[attr-defined]
    assert calls, "expected a tool call"
    for call in calls:
        assert call.type == "function"
        assert call.id.startswith("call")
        assert call.function.name in allowed
        jsonschema.validate(json.loads(call.function.arguments), PARAMS[call.function.name])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_required_always_calls_an_allowed_tool(client: openai.OpenAI, seed: int) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        tools=TOOLS,
        tool_choice="required",
        seed=seed,
        max_tokens=200,
    )
    assert r.choices[0].finish_reason == "tool_calls"
    check_calls(r.choices[0].message, {"get_weather", "get_time"})


def test_named_choice_calls_that_tool(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        tools=TOOLS,
        max_tokens=200,
        seed=1,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        # One call: with parallel calls on, the model may repeat it to the token limit.
        parallel_tool_calls=False,
    )
    assert r.choices[0].finish_reason == "tool_calls"
    check_calls(r.choices[0].message, {"get_time"})


def test_single_call_when_parallel_is_off(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
        seed=1,
        max_tokens=200,
    )
    assert len(r.choices[0].message.tool_calls or []) == 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_none_never_calls(client: openai.OpenAI, seed: int) -> None:
    r = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=TOOLS, tool_choice="none", seed=seed, max_tokens=30
    )
    assert not r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason != "tool_calls"
    assert r.choices[0].message.content


def test_auto_yields_a_call_or_an_answer(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=TOOLS, max_tokens=200, seed=4
    )
    message = r.choices[0].message
    if message.tool_calls:
        assert r.choices[0].finish_reason == "tool_calls"
        check_calls(message, {"get_weather", "get_time"})
    else:
        assert message.content


def test_streamed_tool_call(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        tools=TOOLS,
        tool_choice="required",
        stream=True,
        # Parallel calls let the small model emit call after call until max_tokens
        # (8 calls in 20 seeds here); one call keeps the test about streaming.
        parallel_tool_calls=False,
        seed=1,
        max_tokens=200,
    )
    names: dict[int, str] = {}
    arguments: dict[int, list[str]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                if call.id:  # a call starts: id and name first, arguments after
                    assert call.function and call.function.name
                    names[call.index] = call.function.name
                elif call.function and call.function.arguments:
                    arguments.setdefault(call.index, []).append(call.function.arguments)
            finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert names and names[0] in PARAMS
    # The arguments arrive as they are decoded, in several deltas, and parse whole.
    assert len(arguments[0]) > 1
    assert isinstance(json.loads("".join(arguments[0])), dict)


def test_tool_result_round_trip(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        tools=TOOLS,
        max_tokens=200,
        # Seeded, one call: unseeded, the small model may emit calls until max_tokens.
        seed=1,
        parallel_tool_calls=False,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    call = (first.choices[0].message.tool_calls or [])[0]
    follow = client.chat.completions.create(
        model=MODEL,
        messages=[
            *MESSAGES,
            first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "18 C and sunny"},
        ],
        tools=TOOLS,
        tool_choice="none",
        max_tokens=30,
    )
    assert follow.choices[0].message.content
