"""uvicorn, stopping gracefully: the first SIGTERM (or Ctrl-C) drains, the second forces.

uvicorn alone closes its listener at the first signal, gives requests a fixed few
seconds, cuts streams without a word and re-raises the signal (exit 143). Here the first
signal turns the app to draining (``corral.api.drain``: /ready 503, new work 503 with
retry-after) and waits up to ``shutdown_grace_s`` for what is in flight; streams still
running then end with an error event; then uvicorn shuts down as usual (its lifespan
stops the engine children and hands jobs back) and the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from types import FrameType

import uvicorn

from corral.api.drain import Drain

log = logging.getLogger("corral.serve")

# After the grace period: how long cut streams get to send their error event and end.
CUT_WAIT_S = 3.0
# uvicorn's own bound, once draining is over, on connections still open (then cancelled).
UVICORN_GRACE_S = 5.0


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain: Drain, grace_s: float) -> None:
        super().__init__(config)
        self._drain = drain
        self._grace_s = grace_s
        self._signals = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not uvicorn's: it records the signal to re-raise it after shutdown (exit 143).
        self._signals += 1
        if self._loop is None or self._signals > 2:
            self.should_exit = True
            self.force_exit = self._signals > 2
        elif self._signals == 1:
            self._loop.call_soon_threadsafe(self._begin)
        else:
            self._loop.call_soon_threadsafe(self._force)

    def _begin(self) -> None:
        log.info(
            "draining: %d requests in flight, %.0fs to finish", self._drain.active, self._grace_s
        )
        self._drain.begin()
        self._draining = asyncio.ensure_future(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        if not await self._drain.idle(self._grace_s):
            log.warning("grace period over: ending %d requests", self._drain.active)
            self._drain.expire()
            await self._drain.idle(CUT_WAIT_S)
        self.should_exit = True

    def _force(self) -> None:
        log.warning("second signal: ending %d requests now", self._drain.active)
        self._drain.begin()
        self._drain.expire()
        self.should_exit = True


def serve(app: object, drain: Drain, grace_s: float, **uvicorn_options: object) -> None:
    config = uvicorn.Config(app, timeout_graceful_shutdown=UVICORN_GRACE_S, **uvicorn_options)  # type: ignore[arg-type]
    DrainingServer(config, drain, grace_s).run()
