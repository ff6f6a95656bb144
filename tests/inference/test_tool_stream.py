"""The tool-output scanner returns the same content, names and arguments however the
text is cut into pieces (a token can end anywhere, mid-escape included)."""

from __future__ import annotations

import json
import random

import pytest

from corral.inference.chat_stream import ToolText
from corral.inference.tool_stream import Piece, ToolStream
from corral.inference.tools import ToolPlan
from corral.protocol.events import Event, ToolArgumentsDelta, ToolCallStart

CALLS = (
    '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Par\\"is {x}", '
    '"days": [1, 2]}}, {"name": "get_time", "arguments": {"tz": "\\u00e9t\\u00e9"}}]}'
)
CONTENT = '{"content": "Hi \\"you\\" \\\\ there\\n\\u00e9 \\ud83d\\ude00 done"}'


def _run(document: str, cuts: list[int]) -> list[Piece]:
    stream, pieces, start = ToolStream(), [], 0
    for end in [*cuts, len(document)]:
        pieces += stream.feed(document[start:end])
        start = end
    return pieces


def _splits(document: str, seed: int) -> list[int]:
    rng = random.Random(seed)
    return sorted(rng.sample(range(1, len(document)), k=min(len(document) - 1, 3 + seed % 20)))


@pytest.mark.parametrize("seed", range(30))
def test_calls_arrive_whole_however_cut(seed: int) -> None:
    cuts = list(range(1, len(CALLS))) if seed == 0 else _splits(CALLS, seed)
    pieces = _run(CALLS, cuts)
    names = [(p.index, p.text) for p in pieces if p.kind == "call"]
    assert names == [(0, "get_weather"), (1, "get_time")]
    expected = json.loads(CALLS)["tool_calls"]
    for index, call in enumerate(expected):
        text = "".join(p.text for p in pieces if p.kind == "arguments" and p.index == index)
        assert json.loads(text) == call["arguments"]
    # each call's name comes before its arguments
    first_args = next(pieces.index(p) for p in pieces if p.kind == "arguments" and p.index == 1)
    assert pieces.index(Piece("call", "get_time", 1)) < first_args


@pytest.mark.parametrize("seed", range(30))
def test_content_arrives_unescaped_however_cut(seed: int) -> None:
    cuts = list(range(1, len(CONTENT))) if seed == 0 else _splits(CONTENT, seed)
    pieces = _run(CONTENT, cuts)
    assert {p.kind for p in pieces} == {"content"}
    text = "".join(p.text for p in pieces)
    assert text == json.loads(CONTENT)["content"]
    text.encode()  # no lone surrogate was ever sent


def test_content_comes_before_the_document_ends() -> None:
    stream = ToolStream()
    assert stream.feed('{"content": "Hel') == [Piece("content", "Hel")]
    assert stream.feed("lo") == [Piece("content", "lo")]
    assert stream.feed('"}') == []


def _said(plan_answered: frozenset[tuple[str, str]], text: str) -> list[Event]:
    state = ToolText(ToolPlan("auto", [], None, plan_answered))
    events = []
    for char in text:  # a token a character: the worst case for the scanner
        events += state.feed(char)
    return events


def _calls(events: list[Event]) -> list[tuple[str, str]]:
    """The calls a client assembles from the events (as the openai SDK does)."""
    calls: dict[int, list[str]] = {}
    for event in events:
        if isinstance(event, ToolCallStart):
            calls[event.call] = [event.name, ""]
        elif isinstance(event, ToolArgumentsDelta):
            calls[event.call][1] += event.text
    return [(name, arguments) for name, arguments in calls.values()]


def test_a_stream_sends_each_call_once() -> None:
    add = lambda a, b: {"name": "add", "arguments": {"a": a, "b": b}}  # noqa: E731
    text = json.dumps({"tool_calls": [add(1, 2), add(1, 2), add(3, 4)]})
    events = _said(frozenset(), text)
    assert [(n, json.loads(a)) for n, a in _calls(events)] == [
        ("add", {"a": 1, "b": 2}),
        ("add", {"a": 3, "b": 4}),
    ]
    # The first call streams as it is decoded; a later one of the same name comes whole.
    pieces = [e for e in events if isinstance(e, ToolArgumentsDelta)]
    assert len([e for e in pieces if e.call == 0]) > 2
    assert len([e for e in pieces if e.call == 1]) == 1


def test_a_stream_never_repeats_a_call_answered_in_the_history() -> None:
    answered = frozenset({("add", json.dumps({"a": 1, "b": 2}))})
    text = json.dumps({"tool_calls": [{"name": "add", "arguments": {"b": 2, "a": 1}}]})
    assert _said(answered, text) == []
    other = json.dumps({"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 3}}]})
    assert [json.loads(a) for _, a in _calls(_said(answered, other))] == [{"a": 1, "b": 3}]
