"""The upstream engine's event-stream reader, fed bytes cut anywhere."""

from __future__ import annotations

import pytest

from corral.core.errors import InvalidRequestError
from corral.engines.base import Body
from corral.engines.upstream import EventReader, _affinity_key


async def _read(*pieces: bytes) -> list[Body]:
    reader = EventReader()
    chunks: list[Body] = []
    for piece in pieces:
        chunks += reader.feed(piece)
        if reader.done:
            return chunks
    return chunks + reader.close()


async def test_events_split_anywhere_and_crlf_lines_are_read_whole() -> None:
    stream = b'data: {"a": 1}\n\ndata: {"a": 2}\r\n\r\n: a comment\n\ndata: [DONE]\n\n'
    cuts = [stream[:3], stream[3:17], stream[17:30], stream[30:]]
    assert await _read(*cuts) == [{"a": 1}, {"a": 2}]


async def test_nothing_after_done_is_read() -> None:
    assert await _read(b'data: {"a": 1}\n\ndata: [DONE]\n\ndata: {"a": 2}\n\n') == [{"a": 1}]


async def test_multi_line_data_is_one_event_and_a_last_event_needs_no_blank_line() -> None:
    chunks = await _read(b'data: {"a":\ndata: 1}\n\ndata: {"b": 2}')
    assert chunks == [{"a": 1}, {"b": 2}]


async def test_an_error_event_raises_the_mapped_error() -> None:
    event = b'data: {"error": {"message": "bad", "type": "invalid_request_error"}}\n\n'
    with pytest.raises(InvalidRequestError, match="bad"):
        await _read(event)


def test_a_prompt_cache_key_is_the_affinity_key_before_the_system_prompt() -> None:
    system = {"role": "system", "content": "You are terse."}
    user = {"role": "user", "content": "hi"}
    assert _affinity_key({"messages": [system, user]}) == "You are terse."
    keyed = {"messages": [system, user], "prompt_cache_key": "session-7"}
    assert _affinity_key(keyed) == "key:session-7"
    assert _affinity_key({"messages": [user]}) is None
