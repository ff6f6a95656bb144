"""Slow clients bounded: a body that stalls, a stream nobody reads.

A request body that sends nothing for ``body_idle_timeout_s`` is answered 408 (its
connection held a task and a buffer for as long as the client liked). A streamed answer
whose client stops reading stalls only its own send: the transport buffers up to its
high-water mark, then ``send`` waits; past ``stream_send_timeout_s`` the stream is cut
(its generation stops and is billed for what ran, as for a client that left), so a
slow reader keeps no engine slot for ever. Other streams never wait on it: each
response is its own task.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from corral.core.errors import CorralError

log = logging.getLogger(__name__)


class RequestTimeoutError(CorralError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class _Stalled(Exception):  # not an OSError (TimeoutError is), which Starlette calls a disconnect
    pass


class SlowClients:
    def __init__(self, app: ASGIApp, body_idle_s: float, send_s: float) -> None:
        self.app = app
        self.body_idle_s = body_idle_s
        self.send_s = send_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False
        streaming = False

        async def bounded_receive() -> Message:
            nonlocal body_done
            if body_done:  # after the body: waiting for a disconnect, unbounded
                return await receive()
            try:
                async with asyncio.timeout(self.body_idle_s):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeoutError(
                    f"The request body stalled for {self.body_idle_s:g} s; send it whole.",
                    param="body",
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def bounded_send(message: Message) -> None:
            nonlocal streaming
            if message["type"] == "http.response.start":
                streaming = _is_event_stream(message)
            if not streaming or message["type"] != "http.response.body":
                await send(message)
                return
            try:
                async with asyncio.timeout(self.send_s):
                    await send(message)
            except TimeoutError:
                raise _Stalled from None

        try:
            await self.app(scope, bounded_receive, bounded_send)
        except _Stalled:
            # The response had started: nothing more can be said to this client.
            log.warning(
                "stream cut: its client read nothing for %g s (%s)", self.send_s, scope["path"]
            )


def _is_event_stream(message: Message) -> bool:
    for name, value in message.get("headers", ()):
        if name.lower() == b"content-type":
            return bool(value.startswith(b"text/event-stream"))
    return False
