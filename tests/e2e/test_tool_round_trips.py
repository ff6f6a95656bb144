"""An agent's round trip on the real engine, in every dialect, with the vendors' SDKs: the
model asked for the weather, called ``get_weather``, and its result came back. The next
answer uses the result (``auto``, ``none``), or is a valid call (``required``), and no
text ever carries corral's ``{"tool_calls": …}`` wrapper, streamed or not (issue 28)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import MODEL, LiveServer
from tests.e2e.conftest import SYSTEM

pytestmark = pytest.mark.slow

PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
DESCRIPTION = "The current weather in a city."
QUESTION = "What's the weather in Paris?"
RESULT = "Sunny, 21 C"
ARGUMENTS = json.dumps({"city": "Paris"})


def uses_result(text: str | None) -> None:
    """The answer says what the tool returned, in words (not the call again, not the
    wrapper)."""
    assert text and "tool_calls" not in text, text
    assert "21" in text or "sunny" in text.lower(), text


def chat_history() -> list[dict[str, Any]]:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather"}}
    call["function"]["arguments"] = ARGUMENTS  # type: ignore[index]
    return [
        SYSTEM,
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": RESULT},
    ]


CHAT_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": DESCRIPTION, "parameters": PARAMETERS},
}
CHOICES = ["auto", "none", "required"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("choice", CHOICES)
def test_chat_completions(client: openai.OpenAI, choice: str, stream: bool) -> None:
    common: dict[str, Any] = {"model": MODEL, "messages": chat_history(), "tools": [CHAT_TOOL]}
    common.update(tool_choice=choice, max_tokens=48, temperature=0, seed=1)
    if not stream:
        message = client.chat.completions.create(**common).choices[0].message
        text, calls = message.content, [c.function.name for c in message.tool_calls or []]
    else:
        texts, calls = [], []
        for chunk in client.chat.completions.create(**common, stream=True):
            for c in chunk.choices:
                texts.append(c.delta.content or "")
                calls += [t.function.name for t in c.delta.tool_calls or [] if t.function and t.id]
        text = "".join(texts)
    if choice == "required":
        assert calls == ["get_weather"] and "tool_calls" not in (text or "")
    else:
        assert not calls
        uses_result(text)


def responses_history() -> list[dict[str, Any]]:
    call = {"type": "function_call", "call_id": "call_1", "name": "get_weather"}
    call["arguments"] = ARGUMENTS
    return [
        {"role": "user", "content": QUESTION},
        call,
        {"type": "function_call_output", "call_id": "call_1", "output": RESULT},
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("choice", CHOICES)
def test_responses(client: openai.OpenAI, choice: str, stream: bool) -> None:
    tool = {"type": "function", "name": "get_weather", "description": DESCRIPTION}
    tool["parameters"] = PARAMETERS
    common: dict[str, Any] = {"model": MODEL, "input": responses_history(), "tools": [tool]}
    common.update(tool_choice=choice, max_output_tokens=48, temperature=0)
    common["instructions"] = SYSTEM["content"]
    if not stream:
        response = client.responses.create(**common)
    else:
        with client.responses.stream(**common) as events:
            deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
            response = events.get_final_response()
        assert "".join(deltas) == response.output_text
    calls = [item.name for item in response.output if item.type == "function_call"]
    if choice == "required":
        assert calls == ["get_weather"] and "tool_calls" not in response.output_text
    else:
        assert not calls
        uses_result(response.output_text)


@pytest.fixture(scope="module")
def claude(live_server: LiveServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=live_server.url, api_key="unused", max_retries=0)


ANTHROPIC_CHOICES = {
    "auto": {"type": "auto"},
    "none": {"type": "none"},
    "required": {"type": "any"},
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("choice", CHOICES)
def test_messages(claude: anthropic.Anthropic, choice: str, stream: bool) -> None:
    tool = {"name": "get_weather", "description": DESCRIPTION, "input_schema": PARAMETERS}
    call = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": RESULT}
    common: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 48,
        # The SDK (2.14) no longer takes `temperature`; the API still reads it.
        "extra_body": {"temperature": 0},
        "system": SYSTEM["content"],
        "tools": [tool],
        "tool_choice": ANTHROPIC_CHOICES[choice],
        "messages": [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": [call]},
            {"role": "user", "content": [result]},
        ],
    }
    if not stream:
        message = claude.messages.create(**common)
    else:
        with claude.messages.stream(**common) as events:
            message = events.get_final_message()
    text = "".join(b.text for b in message.content if b.type == "text")
    calls = [b.name for b in message.content if b.type == "tool_use"]
    if choice == "required":
        assert calls == ["get_weather"] and "tool_calls" not in text
        assert message.stop_reason == "tool_use"
    else:
        assert not calls and message.stop_reason != "tool_use"
        uses_result(text)


# Past the call's name, short of its arguments' end (the whole call is ~25 tokens).
MAX_CUT = 20


def cut_arguments(arguments: str) -> None:
    """The arguments as far as they got: the start of ``{"city": "Paris"}`` (the grammar
    lets the model indent), never the wrapper."""
    assert '{"city":"Paris"}'.startswith("".join(arguments.split())), arguments


def test_a_call_cut_by_max_tokens_comes_back_as_far_as_it_got(client: openai.OpenAI) -> None:
    """Cut inside its call, the answer is that call with its arguments so far and
    ``finish_reason: length``, as OpenAI answers and as the stream sends it: never empty.
    (Whole and streamed are not compared token for token: at temperature 0 the engine's
    batching and prompt cache may still move the cut by a token.)"""
    asked = [SYSTEM, {"role": "user", "content": QUESTION}]
    common: dict[str, Any] = {"model": MODEL, "messages": asked, "tools": [CHAT_TOOL]}
    common.update(tool_choice="required", max_tokens=MAX_CUT, temperature=0, seed=1)
    choice = client.chat.completions.create(**common).choices[0]
    assert choice.finish_reason == "length" and choice.message.content is None
    assert [c.function.name for c in choice.message.tool_calls or []] == ["get_weather"]
    cut_arguments(choice.message.tool_calls[0].function.arguments)  # type: ignore[index]
    names, streamed, finish = [], "", None
    for chunk in client.chat.completions.create(**common, stream=True):
        for c in chunk.choices:
            finish = c.finish_reason or finish
            for t in c.delta.tool_calls or []:
                names += [t.function.name] if t.function and t.function.name else []
                streamed += (t.function.arguments or "") if t.function else ""
    assert names == ["get_weather"] and finish == "length"
    cut_arguments(streamed)
