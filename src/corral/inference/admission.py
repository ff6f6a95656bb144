"""A bound on requests in flight: past it, refuse at once instead of queueing forever."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter

from corral.core.errors import OverloadedError


class Admission:
    def __init__(self, limit: int, rejected: Counter | None = None) -> None:
        self.limit = limit
        self.in_flight = 0
        self._rejected = rejected

    def enter(self) -> None:
        # Runs on the event loop only, so a plain counter is race-free.
        if self.in_flight >= self.limit:
            if self._rejected is not None:
                self._rejected.labels("overloaded").inc()
            raise OverloadedError(
                f"The server is at its limit of {self.limit} requests in flight. Retry shortly.",
                headers={"retry-after": "1"},
            )
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1

    @contextmanager
    def slot(self) -> Iterator[None]:
        self.enter()
        try:
            yield
        finally:
            self.leave()
