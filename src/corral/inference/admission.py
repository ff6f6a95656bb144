"""A bound on requests in flight: past it, refuse at once instead of queueing forever.

Two bounds: ``limit`` over everything this process runs, and per model a queue of
``queue_per_slot`` waiting requests for each of its engine's slots. An engine decodes
``slots`` sequences at once and queues the rest; without the second bound 64 clients on
8 slots all waited (half past their own timeouts) and nobody was told to come back.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from prometheus_client import Counter

from corral.catalog.registry import ServedModel
from corral.core.errors import OverloadedError

# Set in a task that runs background work (a batch's requests): what it admits does not
# count as interactive traffic, which background work makes way for.
background: ContextVar[bool] = ContextVar("corral_background", default=False)


class Admission:
    def __init__(
        self, limit: int, rejected: Counter | None = None, queue_per_slot: int | None = None
    ) -> None:
        self.limit = limit
        self.queue_per_slot = queue_per_slot
        self.in_flight = 0
        self.background_in_flight = 0  # of in_flight: background work's (see ``slot``)
        self.last_interactive = float("-inf")  # time.monotonic() of one's start or end
        self._per_model: Tally[str] = Tally()
        self._rejected = rejected

    def _refuse(self, why: str) -> OverloadedError:
        if self._rejected is not None:
            self._rejected.labels("overloaded").inc()
        return OverloadedError(f"{why} Retry shortly.", headers={"retry-after": "1"})

    def _bound(self, served: ServedModel | None) -> int | None:
        if served is None or self.queue_per_slot is None or not served.engine.info.slots:
            return None
        return served.engine.info.slots * (1 + self.queue_per_slot)

    def enter(self, served: ServedModel | None = None) -> None:
        # Runs on the event loop only, so plain counters are race-free.
        if self.in_flight >= self.limit:
            raise self._refuse(f"The server is at its limit of {self.limit} requests in flight.")
        bound = self._bound(served)
        if served is not None and bound is not None:
            model = served.spec.id
            if self._per_model[model] >= bound:
                raise self._refuse(
                    f"Model `{model}` has {bound} requests running or waiting, its limit."
                )
            self._per_model[model] += 1
        self.in_flight += 1
        self._seen()

    def _seen(self) -> None:
        if not background.get():
            self.last_interactive = time.monotonic()

    def leave(self, served: ServedModel | None = None) -> None:
        self.in_flight -= 1
        self._seen()
        if served is not None and self._bound(served) is not None:
            model = served.spec.id
            self._per_model[model] -= 1
            if self._per_model[model] <= 0:
                del self._per_model[model]

    @property
    def interactive_in_flight(self) -> int:
        return self.in_flight - self.background_in_flight

    @contextmanager
    def slot(self, served: ServedModel | None = None) -> Iterator[None]:
        """A request admitted for the block. Background work is counted here only: it
        never streams, and the flag read once is the one undone, whatever context the
        block ends in."""
        mine = int(background.get())
        self.enter(served)
        self.background_in_flight += mine
        try:
            yield
        finally:
            self.background_in_flight -= mine
            self.leave(served)
