"""Reasoning output parsing, on outputs in the shapes DeepSeek-R1 distills produce."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.catalog.schema import ModelSpec
from corral.core.errors import UnsupportedParameterError
from corral.inference.chat_stream import split_events
from corral.inference.reasoning import (
    StreamSplitter,
    check_effort,
    split_reasoning,
    thinking_budget,
)
from corral.protocol.events import Finish, ReasoningDelta, TextDelta

# What an R1 distill writes when its template does not open the tag itself...
WITH_OPEN_TAG = (
    "<think>\nOkay, the user asks for 17 * 3. 17 * 3 = 51. Let me double-check: "
    "10 * 3 = 30 and 7 * 3 = 21, so 51.\n</think>\n\n17 x 3 = **51**."
)
# ... and when the chat template already ends with "<think>\n" (newer R1 templates).
TEMPLATE_OPENED = "Okay, 2 + 2 is 4.\n</think>\n\nThe answer is 4."
# Cut by max_completion_tokens while still thinking.
CUT = "<think>\nFirst, list the primes below 20: 2, 3, 5, 7, 11, 13"


def test_split_whole_outputs() -> None:
    assert split_reasoning(WITH_OPEN_TAG) == (
        "Okay, the user asks for 17 * 3. 17 * 3 = 51. Let me double-check: "
        "10 * 3 = 30 and 7 * 3 = 21, so 51.",
        "17 x 3 = **51**.",
    )
    assert split_reasoning(TEMPLATE_OPENED) == ("Okay, 2 + 2 is 4.", "The answer is 4.")
    assert split_reasoning(CUT) == (
        "First, list the primes below 20: 2, 3, 5, 7, 11, 13",
        "",
    )
    assert split_reasoning("Just an answer.") == (None, "Just an answer.")


def stream(pieces: list[str]) -> tuple[str, str]:
    splitter = StreamSplitter()
    parts = [p for piece in pieces for p in splitter.feed(piece)] + splitter.flush()
    return (
        "".join(t for k, t in parts if k == "reasoning"),
        "".join(t for k, t in parts if k == "content"),
    )


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_stream_split_survives_any_chunking(size: int) -> None:
    pieces = [WITH_OPEN_TAG[i : i + size] for i in range(0, len(WITH_OPEN_TAG), size)]
    thinking, answer = stream(pieces)
    assert thinking.strip() == split_reasoning(WITH_OPEN_TAG)[0]
    assert answer == "17 x 3 = **51**."


def test_stream_without_tags_is_all_answer_and_flows() -> None:
    splitter = StreamSplitter()
    assert splitter.feed("Hel") == [("content", "Hel")]
    assert splitter.feed("lo") == [("content", "lo")]
    # only a possible tag start is held back
    splitter = StreamSplitter()
    assert splitter.feed("<thi") == []
    assert splitter.feed("nk>a") == [("reasoning", "a")]
    assert splitter.feed("b</th") == [("reasoning", "b")]
    assert splitter.feed("ink> ok") == [("content", "ok")]


def test_split_events_moves_thinking_and_counts() -> None:
    events = [
        TextDelta("<think>"),
        TextDelta("hmm"),
        TextDelta("</think>"),
        TextDelta("Yes."),
        ReasoningDelta("split by llama.cpp"),
        Finish("stop"),
    ]
    out, tokens = split_events(events, StreamSplitter())
    assert out == [
        ReasoningDelta("hmm"),
        TextDelta("Yes."),
        ReasoningDelta("split by llama.cpp"),
        Finish("stop"),
    ]
    assert tokens == 2


def spec(*caps: str) -> ModelSpec:
    return ModelSpec(id="m", path=Path("x"), owned_by="t", description="", capabilities=caps)


def test_effort_and_budget() -> None:
    with pytest.raises(UnsupportedParameterError) as err:
        check_effort(spec("chat"), "high")
    assert err.value.param == "reasoning_effort" and err.value.status == 400
    check_effort(spec("chat"), None)
    check_effort(spec("chat", "reasoning"), "low")
    assert thinking_budget("low", None) == 1024
    assert thinking_budget("high", None) == 16384
    assert thinking_budget(None, None) == 4096
    # max_completion_tokens covers thinking and answer: thinking gets at most 3/4 of it
    assert thinking_budget("high", 400) == 300
