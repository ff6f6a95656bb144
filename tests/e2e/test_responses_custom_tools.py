"""Custom (free-form) tools on the Responses API with the official `openai` SDK against a
live server on the embedded model: a round trip (stored and stateless), tool_choice
forcing one, a regex grammar enforced (the input matches it, streamed or not), and what
cannot be enforced refused with 400 and its param (a lark grammar, a lookaround)."""

from __future__ import annotations

import re
from typing import Any

import openai
import pytest

from tests.conftest import MODEL

pytestmark = pytest.mark.slow

INSTRUCTIONS = "You are a helpful assistant. Use the tools."
SQL = {"type": "custom", "name": "run_sql", "description": "Run one SQL query."}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def _regex_tool(definition: str) -> dict[str, Any]:
    fmt = {"type": "grammar", "syntax": "regex", "definition": definition}
    return {"type": "custom", "name": "set_code", "description": "Set a code.", "format": fmt}


def _custom_call(client: openai.OpenAI, **extra: Any) -> Any:
    return client.responses.create(
        model=MODEL,
        instructions=INSTRUCTIONS,
        input="Count the users with SQL.",
        tools=[{**SQL, "format": {"type": "text"}}],
        tool_choice="required",
        max_output_tokens=128,
        temperature=0,
        **extra,
    )


def test_a_custom_tool_round_trip_with_previous_response_id(client: openai.OpenAI) -> None:
    first = _custom_call(client)
    call = first.output[0]
    assert call.type == "custom_tool_call" and call.name == "run_sql"
    assert call.call_id and call.id and call.id.startswith("ctc_")
    assert isinstance(call.input, str) and call.input
    assert [t["type"] for t in first.model_dump()["tools"]] == ["custom"]  # served, echoed
    output = {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "42"}
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[output],
        tools=[SQL],
        tool_choice="none",
        max_output_tokens=24,
    )
    assert second.status in ("completed", "incomplete") and second.output_text
    # The output is kept as an input item of the turn that sent it.
    items = client.responses.input_items.list(second.id).data
    assert items[0].type == "custom_tool_call_output" and items[0].call_id == call.call_id


def test_a_stateless_round_trip_replays_the_custom_call(client: openai.OpenAI) -> None:
    first = _custom_call(client, store=False)
    call = first.output[0]
    assert call.type == "custom_tool_call"
    replayed = {"call_id": call.call_id, "name": call.name, "input": call.input}
    history: list[Any] = [
        {"role": "user", "content": "Count the users with SQL."},
        {"type": "custom_tool_call", **replayed},
        {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "42"},
    ]
    counted = client.responses.input_tokens.count(model=MODEL, input=history, tools=[SQL])
    without = client.responses.input_tokens.count(model=MODEL, input=history[:1], tools=[SQL])
    assert counted.input_tokens > without.input_tokens  # the call and its output are replayed
    second = client.responses.create(
        model=MODEL, input=history, tools=[SQL], store=False, max_output_tokens=24
    )
    assert second.status in ("completed", "incomplete") and second.output


def test_tool_choice_forces_the_custom_tool(client: openai.OpenAI) -> None:
    r = client.responses.create(
        model=MODEL,
        instructions=INSTRUCTIONS,
        input="What is the weather in Oslo?",  # asks for the function, not the custom tool
        tools=[WEATHER, _regex_tool("[A-Z]{3}")],
        tool_choice={"type": "custom", "name": "set_code"},
        max_output_tokens=48,
        temperature=0,
    )
    assert [(o.type, o.name) for o in r.output] == [("custom_tool_call", "set_code")]
    assert r.tool_choice.type == "custom" and r.tool_choice.name == "set_code"


@pytest.mark.parametrize(
    "definition",
    [r"[A-Z]{3}-\d{2}", r"[a-z]{2,8}@[a-z]{2,8}\.(com|org)"],
)
def test_a_regex_grammar_is_enforced(client: openai.OpenAI, definition: str) -> None:
    r = client.responses.create(
        model=MODEL,
        instructions=INSTRUCTIONS,
        input="Write something random.",
        tools=[_regex_tool(definition)],
        tool_choice="required",
        max_output_tokens=64,
        temperature=1.0,
    )
    call = r.output[0]
    assert call.type == "custom_tool_call", r.output
    assert re.fullmatch(definition, call.input), call.input


def test_a_streamed_custom_call_sends_input_deltas(client: openai.OpenAI) -> None:
    definition = r"[a-z]{4,12}( [a-z]{2,12}){2,4}"
    with client.responses.stream(
        model=MODEL,
        instructions=INSTRUCTIONS,
        input="Describe the sea.",
        tools=[_regex_tool(definition)],
        tool_choice="required",
        parallel_tool_calls=False,  # one call: with room for more, the model made three
        # The pattern bounds the input to 64 characters, ~80 with its JSON wrapper, and
        # a constrained small model may spend a token a character: 96 was reached once.
        max_output_tokens=160,
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    deltas = [e.delta for e in events if e.type == "response.custom_tool_call_input.delta"]
    done = [e for e in events if e.type == "response.custom_tool_call_input.done"]
    assert len(deltas) > 1 and len(done) == 1  # the input arrives as it is decoded
    assert types.index("response.output_item.added") < types.index(
        "response.custom_tool_call_input.delta"
    )
    assert types[-3:] == [
        "response.custom_tool_call_input.done",
        "response.output_item.done",
        "response.completed",
    ]
    call = final.output[0]
    assert call.type == "custom_tool_call" and "".join(deltas) == done[0].input == call.input
    assert re.fullmatch(definition, call.input)


@pytest.mark.parametrize(
    ("fmt", "param"),
    [
        ({"type": "grammar", "syntax": "lark", "definition": 'start: A\nA: "a"'}, "syntax"),
        ({"type": "grammar", "syntax": "regex", "definition": "(?=a)a"}, "definition"),
        ({"type": "grammar", "syntax": "regex", "definition": 'say "hi"'}, "definition"),
        ({"type": "grammar", "syntax": "regex", "definition": "(unclosed"}, "definition"),
        ({"type": "grammar", "syntax": "ebnf", "definition": "a"}, "syntax"),
        ({"type": "json"}, None),
    ],
)
def test_a_grammar_not_enforced_is_refused(
    client: openai.OpenAI, fmt: dict[str, Any], param: str | None
) -> None:
    tool = {"type": "custom", "name": "t", "format": fmt}
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=MODEL, input="x", tools=[tool], max_output_tokens=8)
    assert refused.value.param == "tools[0].format" + (f".{param}" if param else "")
