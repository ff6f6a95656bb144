"""Server-sent events in OpenAI's framing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import StreamingResponse

from corral.core.errors import CorralError

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def event(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def _events(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    try:
        if first is not None:
            yield event(first)
        async for chunk in rest:
            yield event(chunk)
    except CorralError as exc:
        yield event(exc.to_dict())
    except Exception:
        log.exception("stream failed")
        yield event(CorralError("The server had an error while streaming.").to_dict())
    yield DONE


async def sse_response(stream: AsyncIterator[Any]) -> StreamingResponse:
    """Start streaming only once the first chunk exists.

    Errors the engine raises before any output (a bad schema, say) then still get a
    proper HTTP status instead of a 200 with an error event.
    """
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        first = None
    return StreamingResponse(
        _events(first, stream), media_type="text/event-stream", headers=HEADERS
    )
