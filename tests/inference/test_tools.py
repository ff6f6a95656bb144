from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from corral.inference.tool_stream import WordsGuard, words_text
from corral.inference.tools import ToolPlan, in_words, output_schema, parse_output, plan_tools
from corral.protocol.chat import ChatCompletionRequest

TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
}
OTHER = {"type": "function", "function": {"name": "other"}}


def request(**extra: object) -> ChatCompletionRequest:
    """A request whose question names the tools' subjects (``lookup``, ``add``)."""
    return ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "lookup: add"}], **extra}
    )


def test_none_and_no_tools_are_unconstrained() -> None:
    for req in (request(), request(tools=[TOOL], tool_choice="none")):
        plan = plan_tools(req)
        assert plan.mode == "off" and plan.response_format is None
        assert plan.messages == [{"role": "user", "content": "lookup: add"}]


def test_named_choice_allows_only_that_tool() -> None:
    req = request(
        tools=[TOOL, OTHER], tool_choice={"type": "function", "function": {"name": "other"}}
    )
    plan = plan_tools(req)
    schema = plan.response_format["json_schema"]["schema"]  # type: ignore[index]
    good = {"tool_calls": [{"name": "other", "arguments": {}}]}
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"tool_calls": [{"name": "lookup", "arguments": {}}]}, schema)
    assert plan.messages[0]["role"] == "system"


def test_required_needs_a_call_and_auto_allows_content() -> None:
    forced = output_schema("forced", [request(tools=[TOOL]).tools[0]], parallel=False)  # type: ignore[index]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"tool_calls": []}, forced)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"content": "x"}, forced)
    two = {"tool_calls": [{"name": "lookup", "arguments": {}}] * 2}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(two, forced)  # parallel_tool_calls=False: one call
    auto = output_schema("auto", [request(tools=[TOOL]).tools[0]], parallel=True)  # type: ignore[index]
    jsonschema.validate({"content": "x"}, auto)
    jsonschema.validate(two, auto)


def test_history_is_rewritten_as_text() -> None:
    req = request(
        messages=[
            {"role": "developer", "content": "be brief"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q": "x"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        ],
        tools=[TOOL],
    )
    for choice in ("auto", "none", "required"):
        plan = plan_tools(req.model_copy(update={"tool_choice": choice}))
        msgs = plan.messages
        assert msgs[0]["role"] == "system" and msgs[0]["content"].startswith("be brief")
        assert msgs[1] == {"role": "user", "content": "ab"}
        # In words, never the grammar's wrapper: a small model copies what it sees. Only
        # the tools prompt names it.
        assert msgs[2] == {"role": "assistant", "content": 'I called lookup(q="x").'}
        assert msgs[3] == {"role": "user", "content": 'lookup(q="x") returned: 42'}
        assert all("tool_calls" not in m["content"] for m in msgs[1:])
        assert ("tool_calls" in msgs[0]["content"]) == (choice != "none")


def test_a_call_with_its_result_in_the_history_is_not_made_again() -> None:
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "lookup", "arguments": '{"q":"x"}'},
    }
    history = [
        {"role": "user", "content": "look up x"},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    plan = plan_tools(request(messages=history, tools=[TOOL]))
    assert plan.mode == "auto"
    same = parse_output(
        '{"tool_calls": [{"name": "lookup", "arguments": {"q": "x"}}]}', plan.answered
    )
    assert same.tool_calls is None and plan.needs_answer(same)
    other = '{"tool_calls": [{"name": "lookup", "arguments": {"q": "y"}}]}'
    assert parse_output(other, plan.answered).tool_calls
    # required must call: it may repeat.
    forced = plan_tools(request(messages=history, tools=[TOOL], tool_choice="required"))
    assert forced.answered == frozenset()


def test_one_answer_never_makes_the_same_call_twice() -> None:
    text = json.dumps(
        {
            "tool_calls": [
                {"name": "add", "arguments": {"a": 1, "b": 2}},
                {"name": "add", "arguments": {"b": 2, "a": 1}},
                {"name": "add", "arguments": {"a": 3, "b": 4}},
            ]
        }
    )
    got = [json.loads(c.function.arguments) for c in parse_output(text).tool_calls or []]
    assert got == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]


def calls_allowed(plan: ToolPlan) -> bool:
    return "tool_calls" in json.dumps(plan.response_format)


def test_auto_answers_in_words_when_no_tool_fits() -> None:
    weather = {
        "type": "function",
        "function": {"name": "get_weather", "description": "The current weather in a city."},
    }
    asked = lambda q: request(messages=[{"role": "user", "content": q}], tools=[weather])  # noqa: E731
    assert calls_allowed(plan_tools(asked("What's the weather in Oslo?")))
    assert calls_allowed(plan_tools(asked("Which city has the best weather?")))
    hamlet = plan_tools(asked("Who wrote Hamlet?"))
    assert hamlet.mode == "words" and hamlet.response_format is None
    # The tools are still described: the prompt is the same whatever the turn asks.
    assert "get_weather" in hamlet.messages[0]["content"]
    forced = plan_tools(asked("Who wrote Hamlet?").model_copy(update={"tool_choice": "required"}))
    assert forced.mode == "forced" and calls_allowed(forced)


def test_the_tools_prompt_is_one_prefix_across_turns() -> None:
    """Turns that ask about different tools, or none (and a choice that names one),
    read the same system text, so the engine's cache holds it from turn to turn."""
    weather = {"type": "function", "function": {"name": "get_weather", "description": "Weather."}}
    stock = {"type": "function", "function": {"name": "get_stock_price", "description": "Stock."}}
    system = {"role": "system", "content": "You are an agent."}

    def turn(question: str, **extra: object) -> ToolPlan:
        messages = [system, {"role": "user", "content": question}]
        return plan_tools(request(messages=messages, tools=[weather, stock], **extra))

    named = {"type": "function", "function": {"name": "get_stock_price"}}
    plans = [
        turn("The weather in Oslo?"),
        turn("The stock price of ACME?"),
        turn("Who wrote Hamlet?"),
        turn("The weather in Oslo?", tool_choice=named),
    ]
    assert len({p.messages[0]["content"] for p in plans}) == 1
    assert plans[0].messages[0]["content"].startswith("You are an agent.")
    grammars = [json.dumps(p.response_format) for p in plans]
    assert "get_weather" in grammars[0] and "get_stock_price" not in grammars[0]
    assert "get_stock_price" in grammars[1] and "get_weather" not in grammars[1]
    assert plans[2].mode == "words"


def test_an_answer_asked_again_reads_the_same_prompt() -> None:
    plan = plan_tools(request(messages=[{"role": "user", "content": "look up x"}], tools=[TOOL]))
    body = {"messages": plan.messages, "response_format": plan.response_format, "max_tokens": 50}
    words = in_words(body, plan, {"completion_tokens": 20})
    assert words is not None and words["messages"] is plan.messages
    assert words["max_tokens"] == 30 and "response_format" not in words
    assert in_words(body, plan, {"completion_tokens": 50}) is None


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("It is sunny.", "It is sunny."),
        ('  {"content": "It is \\"sunny\\"."}', 'It is "sunny".'),
        ('{\n "content": "ok"}', "ok"),
        ('{"tool_calls": [{"name": "lookup", "arguments": {}}]}', ""),
        ('{"a": 1}', '{"a": 1}'),
        ('{"contents": 1}', '{"contents": 1}'),
        ('{"con', '{"con'),  # cut before it told
    ],
)
def test_an_answer_in_words_never_shows_the_wrapper(written: str, said: str) -> None:
    assert words_text(written) == said
    guard = WordsGuard()
    assert "".join(guard.feed(c) for c in written) + guard.flush() == said


def test_an_empty_auto_answer_is_asked_again() -> None:
    plan = plan_tools(request(messages=[{"role": "user", "content": "look up x"}], tools=[TOOL]))
    assert plan.needs_answer(parse_output('{"content": " "}'))
    assert not plan.needs_answer(parse_output('{"content": "hi"}'))


def test_parse_output() -> None:
    parsed = parse_output('{"tool_calls": [{"name": "lookup", "arguments": {"q": "x"}}]}')
    assert parsed.content is None and parsed.tool_calls
    assert json.loads(parsed.tool_calls[0].function.arguments) == {"q": "x"}
    assert parse_output('{"content": "hello"}').content == "hello"
    assert parse_output('{"tool_calls": [{"na').content == ""  # cut: see below


ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    },
}


def calls_bound(plan_schema: dict[str, object]) -> int:
    forced = plan_schema["anyOf"][0] if "anyOf" in plan_schema else plan_schema  # type: ignore[index]
    return forced["properties"]["tool_calls"]["maxItems"]  # type: ignore[no-any-return,index]


def test_named_choice_is_one_call_even_with_parallel_calls() -> None:
    # Issue 21: a named choice with parallel calls on repeated the call to max_tokens.
    req = request(tools=[ADD], tool_choice={"type": "function", "function": {"name": "add"}})
    schema = plan_tools(req).response_format["json_schema"]["schema"]  # type: ignore[index]
    assert calls_bound(schema) == 1


def test_calls_are_bounded_by_the_output_budget() -> None:
    for choice in ("required", "auto"):
        small = plan_tools(request(tools=[ADD], tool_choice=choice, max_tokens=200))
        big = plan_tools(request(tools=[ADD], tool_choice=choice, max_tokens=4000))
        tiny = plan_tools(request(tools=[ADD], tool_choice=choice, max_tokens=3))
        assert calls_bound(small.response_format["json_schema"]["schema"]) == 4  # type: ignore[index]
        assert calls_bound(big.response_format["json_schema"]["schema"]) == 8  # type: ignore[index]
        assert calls_bound(tiny.response_format["json_schema"]["schema"]) == 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "content", "calls"),
    [
        # The leak issue 21 saw: a repeated call cut by max_tokens.
        (
            '{"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 40}}, {"name": "add", '
            '"arguments": {"a": 2, "b": 4',
            None,
            [("add", {"a": 2, "b": 40})],
        ),
        ('{"tool_calls": [{"name": "ad', "", []),
        # No call finished: the one it was cut in, as far as it got (as OpenAI's).
        ('{"tool_calls": [{"name": "add", "arguments": {"a": 2', None, [("add", '{"a": 2')]),
        ('{"content": "Hello \\"wor', 'Hello "wor', []),
        ('{"content": "caf\\u00', "caf", []),
        ("", "", []),
    ],
)
def test_a_cut_output_never_exposes_the_wrapper(
    text: str, content: str | None, calls: list[tuple[str, object]]
) -> None:
    parsed = parse_output(text)
    assert parsed.content == content
    got = [(c.function.name, _loads(c.function.arguments)) for c in parsed.tool_calls or []]
    assert got == calls


def test_a_template_that_knows_tools_gets_them_in_its_own_format() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    history = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": "lookup: add"},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    auto = plan_tools(request(messages=history, tools=[TOOL]), native=True)
    assert auto.native and auto.response_format is None and auto.tool_choice == "auto"
    assert auto.tools == [TOOL]
    assert auto.messages[0] == {"role": "system", "content": "be brief"}
    assert auto.messages[2]["tool_calls"][0]["function"]["name"] == "lookup"
    assert auto.messages[3] == {"role": "tool", "tool_call_id": "c1", "content": "42"}
    none = plan_tools(request(messages=history, tools=[TOOL], tool_choice="none"), native=True)
    assert none.native and none.tools is None and none.messages == auto.messages
    # A forced choice takes corral's grammar, whatever the template.
    forced = plan_tools(
        request(messages=history, tools=[TOOL], tool_choice="required"), native=True
    )
    assert not forced.native and forced.response_format is not None


def test_after_a_result_only_tools_the_question_is_about_are_offered() -> None:
    weather = {
        "type": "function",
        "function": {"name": "get_weather", "description": "The current weather in a city."},
    }
    stock = {
        "type": "function",
        "function": {
            "name": "get_stock_price",
            "description": "The latest price of a stock.",
            "parameters": {"type": "object", "properties": {"symbol": {"type": "string"}}},
        },
    }
    call = {"id": "c1", "type": "function"}
    call["function"] = {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    history = [
        {"role": "user", "content": "What's the weather in Oslo?"},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "14 C"},
    ]
    plan = plan_tools(request(messages=history, tools=[weather, stock]))
    schema = json.dumps(plan.response_format)
    assert "get_weather" in schema and "get_stock_price" not in schema
    # A parameter's name is a subject word too.
    asked = [{"role": "user", "content": "Which symbol is Apple's?"}]
    assert calls_allowed(plan_tools(request(messages=asked, tools=[weather, stock])))


def test_auto_offers_the_tools_the_question_says_most_about() -> None:
    def tool(name: str, description: str, *params: str) -> dict[str, Any]:
        properties = {p: {"type": "number"} for p in params}
        parameters = {"type": "object", "properties": properties}
        return {
            "type": "function",
            "function": {"name": name, "description": description, "parameters": parameters},
        }

    triangle = tool("calc_area_triangle", "Area of a triangle.", "base", "height")
    circle = tool("calc_area_circle", "Area of a circle.", "radius")
    weather = tool("get_weather", "The current weather in a city.", "city")
    clock = tool("get_time", "The current local time in a time zone.", "timezone")
    asked = [{"role": "user", "content": "Find the area of a triangle with base 10 and height 5."}]
    schema = json.dumps(
        plan_tools(request(messages=asked, tools=[triangle, circle])).response_format
    )
    assert "calc_area_triangle" in schema and "calc_area_circle" not in schema
    # Two things asked, as much about each: both offered.
    both = [{"role": "user", "content": "The weather in Madrid, and the time in Europe/Madrid?"}]
    schema = json.dumps(plan_tools(request(messages=both, tools=[weather, clock])).response_format)
    assert "get_weather" in schema and "get_time" in schema


def _loads(arguments: str) -> object:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments  # a call cut by max_tokens
