"""The core's events as Anthropic's: an error mid-stream, the error shapes."""

from __future__ import annotations

from corral.core.errors import EngineError, OverloadedError
from corral.inference.messages.events import MessageStream
from corral.protocol.events import Failed, TextDelta
from corral.protocol.messages import Message, MessageUsage, error_body, error_status


async def test_an_error_mid_stream_is_an_error_event_after_what_was_sent() -> None:
    message = Message(id="msg_1", model="m", usage=MessageUsage(input_tokens=0, output_tokens=0))
    stream = MessageStream(message, str.upper, True)
    failed = Failed(EngineError("engine failed: out of memory"))
    events = [*stream.start(), *stream.feed(TextDelta("Hel")), *stream.feed(failed)]
    assert await stream.end() == []  # nothing after the error
    kinds = [e["type"] for e in events]
    assert kinds == ["message_start", "ping", "content_block_start", "content_block_delta", "error"]
    assert events[-1]["error"] == {"type": "api_error", "message": "engine failed: out of memory"}


def test_statuses_map_to_anthropics_error_types() -> None:
    assert error_status(OverloadedError.status) == (529, "overloaded_error")
    assert error_status(429) == (429, "rate_limit_error")
    assert error_status(422) == (422, "invalid_request_error")
    assert error_body(401, "no")["error"] == {"type": "authentication_error", "message": "no"}
