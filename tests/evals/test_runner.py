"""One item of a run: an item's own conversation with tool turns, the sample namespace's
tool fields, and grading "no tool call" and "these calls" with string checks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from corral.evals.definitions import EvalDefinition, parse_definition
from corral.evals.runner import RunPlan, build_messages, evaluate, sample_namespace
from corral.evals.templates import TemplateError
from corral.protocol.evals import ItemReference

CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
}
CONVERSATION = [
    {"role": "system", "content": "You have tools."},
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature_c": 14}'},
]
CONFIG = {
    "type": "custom",
    "include_sample_schema": True,
    "item_schema": {
        "type": "object",
        "properties": {
            "messages": {"type": "array"},
            "calls": {"type": "string"},
            "answer": {"type": "string"},
        },
    },
}


def check(name: str, input_: str, reference: str, operation: str) -> dict[str, Any]:
    return {
        "type": "string_check",
        "name": name,
        "input": input_,
        "reference": reference,
        "operation": operation,
    }


CRITERIA = [
    check("calls", "{{sample.output_tool_names}}", "{{item.calls}}", "eq"),
    check("fact", "{{sample.output_text}}", "{{item.answer}}", "ilike"),
    check("not empty", "{{sample.output_text}}{{sample.output_tool_names}}", "", "ne"),
]


def definition() -> EvalDefinition:
    return parse_definition(CONFIG, CRITERIA, lambda name: True)


def plan() -> RunPlan:
    ref = ItemReference(type="item_reference", item_reference="item.messages")
    return RunPlan(definition(), "m", ref, {"temperature": 0})


def test_an_items_conversation_keeps_its_tool_turns() -> None:
    messages = build_messages(plan(), {"messages": CONVERSATION})
    assert messages == CONVERSATION


def test_fields_other_than_the_chat_ones_are_left_out() -> None:
    given = [{"role": "user", "content": "hi", "weight": 3, "tool_call_id": "x"}]
    assert build_messages(plan(), {"messages": given}) == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    "messages",
    [
        [],
        "hello",
        [{"role": "user"}],
        [{"role": "robot", "content": "hi"}],
        [{"role": "user", "content": None}],
        [{"role": "user", "content": "hi", "tool_calls": [CALL]}],
        [{"role": "assistant", "content": None, "tool_calls": "get_weather"}],
        [{"role": "assistant", "content": None, "tool_calls": []}],
        [{"role": "tool", "content": "14"}],
    ],
)
def test_a_conversation_that_is_not_one_is_a_template_error(messages: Any) -> None:
    with pytest.raises(TemplateError):
        build_messages(plan(), {"messages": messages})


def response(content: str | None, calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    finish = "tool_calls" if calls else "stop"
    return {"model": "m", "choices": [{"index": 0, "message": message, "finish_reason": finish}]}


def call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    function = {"name": name, "arguments": json.dumps(arguments)}
    return {"id": "c", "type": "function", "function": function}


def test_tool_names_sorted_and_arguments_one_per_line() -> None:
    sample = sample_namespace(
        response(None, [call("get_weather", {"city": "Rome"}), call("get_time", {"tz": "UTC"})])
    )
    assert sample["output_tool_names"] == "get_time,get_weather"
    assert sample["output_tool_arguments"] == '{"city": "Rome"}\n{"tz": "UTC"}'
    none = sample_namespace(response("Hello."))
    assert (none["output_tool_names"], none["output_tool_arguments"]) == ("", "")


def answering(answer: dict[str, Any]) -> Any:
    async def chat(model: str, body: dict[str, Any]) -> dict[str, Any]:
        chat.bodies.append(body)  # type: ignore[attr-defined]
        return answer

    chat.bodies = []  # type: ignore[attr-defined]
    return chat


async def no_embed(texts: list[str]) -> list[list[float]]:
    raise AssertionError("not used")


async def no_python(source: str, sample: dict[str, Any], item: dict[str, Any]) -> float:
    raise AssertionError("not used")


ITEM = {"messages": CONVERSATION, "calls": "", "answer": "14"}


@pytest.mark.parametrize(
    ("answer", "status", "failed"),
    [
        (response("It is 14 °C in Oslo."), "pass", []),
        (response("It is cold."), "fail", ["fact"]),
        (response(None, [CALL]), "fail", ["calls", "fact"]),  # the call again, no words
        (response(""), "fail", ["fact", "not empty"]),
    ],
)
async def test_grading_an_answer_to_a_tool_result(
    answer: dict[str, Any], status: str, failed: list[str]
) -> None:
    chat = answering(answer)
    outcome = await evaluate(plan(), ITEM, None, chat, no_embed, no_python)
    assert outcome.status == status
    assert [r.name for r in outcome.results if not r.passed] == failed
    assert chat.bodies[0]["messages"] == CONVERSATION
    assert outcome.sample["input"] == CONVERSATION


async def test_no_tool_call_expected_and_none_made_passes() -> None:
    item = {"messages": CONVERSATION[:2], "calls": "", "answer": ""}
    outcome = await evaluate(plan(), item, None, answering(response("Hi!")), no_embed, no_python)
    assert outcome.status == "pass"


async def test_a_conversation_the_chat_request_refuses_is_an_item_error() -> None:
    async def refusing(model: str, body: dict[str, Any]) -> dict[str, Any]:
        from corral.protocol.chat import ChatCompletionRequest

        ChatCompletionRequest.model_validate({"model": model, **body})
        raise AssertionError("should have been refused")

    bad_call = {"role": "assistant", "content": None, "tool_calls": [{"id": 3}]}
    item = {"messages": [*CONVERSATION[:2], bad_call], "calls": "", "answer": ""}
    outcome = await evaluate(plan(), item, None, refusing, no_embed, no_python)
    assert outcome.status == "error"
    assert outcome.sample["error"]["code"] == "invalid_template"
