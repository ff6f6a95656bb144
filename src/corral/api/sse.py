"""Server-sent events: OpenAI's ``data:`` framing and the typed streams' ``event:`` lines,
written from a dialect's presenter of the core's events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson
from starlette.responses import StreamingResponse

from corral.protocol.events import Event

DONE = b"data: [DONE]\n\n"
HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def event(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class Presenter(Protocol):
    """A dialect's stream: what it says before the first event, for each, and last."""

    def start(self) -> list[Any]: ...

    def feed(self, event: Event) -> list[Any]: ...

    async def end(self) -> list[Any]: ...


async def first_event(stream: AsyncIterator[Event]) -> Event | None:
    """The stream's first event, awaited before the response starts: errors before any
    output (a bad schema, say) raise here, while an HTTP status can still say so."""
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None


async def _frames(
    first: Event | None, rest: AsyncIterator[Event], presenter: Presenter, typed: bool
) -> AsyncIterator[bytes]:
    """The one frame per event between the meter's stage and the socket."""
    frame = typed_event if typed else event
    for payload in presenter.start():
        yield frame(payload)
    if first is not None:
        for payload in presenter.feed(first):
            yield frame(payload)
        async for item in rest:
            for payload in presenter.feed(item):
                yield frame(payload)
    for payload in await presenter.end():
        yield frame(payload)
    if not typed:
        yield DONE


async def event_stream(
    stream: AsyncIterator[Event], presenter: Presenter, typed: bool
) -> StreamingResponse:
    """A dialect's event stream, started once its first event exists. ``typed``: each
    event's type named on an ``event:`` line, no ``[DONE]`` (Responses, Messages)."""
    first = await first_event(stream)
    body = _frames(first, stream, presenter, typed)
    return StreamingResponse(body, media_type="text/event-stream", headers=HEADERS)


def typed_event(payload: dict[str, Any]) -> bytes:
    """One event of a typed stream (Responses, Messages): its type named on the
    ``event:`` line as well."""
    return (
        b"event: " + str(payload["type"]).encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
    )
