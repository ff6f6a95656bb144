"""Stop sequences matched by corral: held back while they could begin, cut on a match,
the engine's stream closed and usage made up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from corral.inference.stops import StopScanner, scan_stops


def test_text_that_could_begin_a_stop_is_held_back() -> None:
    scanner = StopScanner(["END", "##"])
    assert scanner.feed("hello E") == "hello "
    assert scanner.feed("N") == ""
    assert scanner.feed("X #") == "ENX "
    assert scanner.feed("#tail") == "" and scanner.found == "##"


def test_the_earliest_match_wins_and_flush_returns_the_rest() -> None:
    scanner = StopScanner(["b", "abc"])
    assert scanner.feed("xxab") == "xxa" and scanner.found == "b"
    other = StopScanner(["zz"])
    assert other.feed("abz") == "ab" and other.flush() == "z"


async def _engine(pieces: list[str], closed: list[bool]) -> AsyncIterator[dict[str, Any]]:
    try:
        for piece in pieces:
            yield {"choices": [{"index": 0, "delta": {"content": piece}}]}
        yield {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        yield {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": len(pieces)}}
    finally:
        closed.append(True)


async def _count() -> int:
    return 7


async def test_a_match_ends_the_stream_with_the_sequence_and_usage() -> None:
    closed: list[bool] = []
    chunks = [
        c async for c in scan_stops(_engine(["1,", " 2,", " 3", ","], closed), [" 3"], _count)
    ]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "1, 2,"
    finish = chunks[-2]["choices"][0]
    assert finish["finish_reason"] == "stop" and finish["stop_sequence"] == " 3"
    assert chunks[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert closed == [True]  # the generation was stopped


async def test_no_match_passes_the_engines_end_through() -> None:
    closed: list[bool] = []
    chunks = [c async for c in scan_stops(_engine(["a", "b#"], closed), ["##"], _count)]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "ab#"  # the held-back "#" flushed before the finish
    assert "stop_sequence" not in chunks[-2]["choices"][0]
    assert chunks[-1]["usage"]["prompt_tokens"] == 9
