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
    first = await _first(stream)
    return StreamingResponse(
        _events(first, stream), media_type="text/event-stream", headers=HEADERS
    )


async def _first(stream: AsyncIterator[Any]) -> Any | None:
    """The stream's first item, awaited now (None: it was empty)."""
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None


def typed_event(payload: dict[str, Any]) -> bytes:
    """One event of a typed stream (Responses, Messages): its type named on the
    ``event:`` line as well."""
    return (
        b"event: " + str(payload["type"]).encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
    )


async def _typed(stream: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for payload in stream:
        yield typed_event(payload)


def typed_sse_response(stream: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    """A typed event stream: it ends with its own last event (no ``[DONE]``), and the
    dialect's stream reports its errors as events of its own."""
    return StreamingResponse(_typed(stream), media_type="text/event-stream", headers=HEADERS)


async def first_then_rest(stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The stream with its first item already awaited: errors before any output (a bad
    schema, say) raise here, while an HTTP status can still say so."""
    first = await _first(stream)
    if first is None:
        return _empty()

    async def chained() -> AsyncIterator[Any]:
        yield first
        async for item in stream:
            yield item

    return chained()


async def _empty() -> AsyncIterator[Any]:
    return
    yield
