"""Graceful shutdown, as HTTP sees it: a SIGTERM turns the server to draining.

Draining, ``/ready`` answers 503 (so a load balancer stops sending), every new request
but ``/health``, ``/ready`` and ``/metrics`` gets 503 with ``retry-after`` (another
replica takes it), and what is in flight runs on. When ``shutdown_grace_s`` has passed,
streams still running are ended (``expire``): each stops at its next chunk with an error
event in its dialect, and the meter bills what it generated, as for a client that left.
The signal handling itself is the serve command's (``corral.cli.app``).
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from corral.api.errors import response_for
from corral.core.errors import CorralError, OverloadedError

EXEMPT = frozenset({"/health", "/ready", "/metrics"})
RETRY_AFTER_S = "1"


class ShuttingDownError(CorralError):
    """A stream still running when the shutdown grace period ended."""

    status = 503
    type = "server_error"
    code = "server_shutting_down"


class Drain:
    def __init__(self) -> None:
        self.draining = False
        self.expired = False
        self.active = 0  # requests in flight (the exempt paths not counted)
        self._idle = asyncio.Event()
        self._idle.set()

    def begin(self) -> None:
        self.draining = True

    def expire(self) -> None:
        self.expired = True

    async def idle(self, seconds: float) -> bool:
        """Wait until nothing is in flight (True), or ``seconds`` have passed (False)."""
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def enter(self) -> None:
        self.active += 1
        self._idle.clear()

    def leave(self) -> None:
        self.active -= 1
        if not self.active:
            self._idle.set()

    def check(self) -> None:
        """Read between a stream's events (a token apart): once the grace period has
        ended, the stream is cut with an error event in its dialect. A flag, so the hot
        path pays nothing for it."""
        if self.expired:
            raise ShuttingDownError(
                "The server is shutting down; this response was cut short. Retry it.",
                headers={"retry-after": RETRY_AFTER_S},
            )


class DrainMiddleware:
    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in EXEMPT:
            await self.app(scope, receive, send)
            return
        if self.drain.draining:
            refused = OverloadedError(
                "The server is shutting down. Retry the request (another replica takes it).",
                code="server_shutting_down",
                headers={"retry-after": RETRY_AFTER_S, "connection": "close"},
            )
            await response_for(Request(scope), refused)(scope, receive, send)
            return
        self.drain.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.drain.leave()
