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
        watch: _SendWatch | None = None

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
            nonlocal watch
            if message["type"] == "http.response.start" and _is_event_stream(message):
                watch = _SendWatch(self.send_s)
            if watch is None or message["type"] != "http.response.body":
                await send(message)
                return
            await watch.send(send, message)

        try:
            await self.app(scope, bounded_receive, bounded_send)
        except _Stalled:
            # The response had started: nothing more can be said to this client.
            log.warning(
                "stream cut: its client read nothing for %g s (%s)", self.send_s, scope["path"]
            )
        finally:
            if watch is not None:
                watch.close()


class _SendWatch:
    """A stream's sends bounded by one timer, not a timer per send.

    A send returns at once unless the client stopped reading (the transport's buffer is
    full), and a stream sends once a token: ``asyncio.timeout`` around each send made
    and cancelled a timer per token (~11 us, on the hottest path corral has). Here one
    timer checks the send in progress, if any, and re-arms itself only while sends go
    on; a send running for ``limit`` seconds has its task cancelled, as the timeout did.
    """

    def __init__(self, limit: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._limit = limit
        self._since: float | None = None  # when the send in progress began
        self._task: asyncio.Task[object] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._expired = False

    async def send(self, send: Send, message: Message) -> None:
        # The loop given: without it current_task asks for the running loop, which on
        # Python 3.11 is a getpid() system call (its fork check), once a token.
        task = self._task = asyncio.current_task(self._loop)
        assert task is not None
        self._since = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_at(self._since + self._limit, self._check)
        cancelling = task.cancelling()
        try:
            await send(message)
        except asyncio.CancelledError:
            if self._expired:
                self._expired = False
                if task.uncancel() <= cancelling:  # ours alone: a stall, not a cancel
                    raise _Stalled from None
            raise
        finally:
            self._since = None
            if self._expired:  # our cancel became something else: take it back, as
                self._expired = False  # asyncio.timeout does whenever it fired
                task.uncancel()

    def _check(self) -> None:
        self._timer = None
        if self._since is None or self._task is None:
            return  # no send in progress: the next one arms the timer again
        deadline = self._since + self._limit
        if self._loop.time() < deadline:
            self._timer = self._loop.call_at(deadline, self._check)
            return
        self._expired = True
        self._task.cancel()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _is_event_stream(message: Message) -> bool:
    for name, value in message.get("headers", ()):
        if name.lower() == b"content-type":
            return bool(value.startswith(b"text/event-stream"))
    return False
