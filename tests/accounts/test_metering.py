"""The meter's stream stage: usage read by type, errors after the first event said as
``Failed``, the shutdown check, and the stream it reads closed however it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from corral.accounts.metering import Meter
from corral.core.errors import CorralError, EngineError
from corral.protocol.common import Usage
from corral.protocol.events import Event, Failed, Finish, TextDelta, UsageReport, aclose, started

USAGE = Usage(prompt_tokens=5, completion_tokens=2, total_tokens=7)


class Recorded(Meter):
    def __init__(self) -> None:  # no accounting: only the stage is under test
        self.settled: list[tuple[dict[str, Any] | None, str]] = []

    def settle_later(self, ticket: Any, usage: dict[str, Any] | None, status: str) -> None:
        self.settled.append((usage, status))


class Source:
    """A core stream that records whether it was closed."""

    def __init__(self, events: list[Event], then: Exception | None = None) -> None:
        self.closed = False
        self._events, self._then = events, then

    async def run(self) -> AsyncIterator[Event]:
        try:
            for event in self._events:
                yield event
            if self._then is not None:
                raise self._then
        finally:
            self.closed = True


TICKET = SimpleNamespace(prompt_estimate=11)


async def _read(meter: Meter, source: Source, **kw: Any) -> list[Event]:
    raw = meter._stream(source.run(), TICKET, kw.get("want_usage", False), kw.get("check"))  # type: ignore[arg-type]
    return [event async for event in await started(raw)]


async def test_usage_is_read_by_type_and_kept_only_when_asked() -> None:
    meter = Recorded()
    events: list[Event] = [TextDelta("a"), Finish("stop"), UsageReport(USAGE)]
    assert await _read(meter, Source(events)) == events[:2]
    assert await _read(meter, Source(events), want_usage=True) == events
    assert meter.settled == [(USAGE.model_dump(), "ok")] * 2


async def test_an_error_after_the_first_event_is_failed_and_billed_for_what_went_out() -> None:
    meter = Recorded()
    broke = EngineError("engine failed")
    got = await _read(meter, Source([TextDelta("a"), TextDelta("b")], then=broke))
    assert got[:2] == [TextDelta("a"), TextDelta("b")] and got[2] == Failed(broke)
    assert meter.settled == [({"prompt_tokens": 11, "completion_tokens": 2}, "error")]


async def test_an_error_before_any_event_raises_for_an_http_status() -> None:
    meter = Recorded()
    with pytest.raises(EngineError):
        await _read(meter, Source([], then=EngineError("bad schema")))
    assert meter.settled == [({"prompt_tokens": 11, "completion_tokens": 0}, "error")]


async def test_a_cut_ends_with_failed_closes_the_source_and_bills_as_cancelled() -> None:
    meter = Recorded()
    cut: list[bool] = []

    def check() -> None:
        if cut:
            raise CorralError("shutting down")
        cut.append(True)

    source = Source([TextDelta("a"), TextDelta("b"), TextDelta("c")])
    got = await _read(meter, source, check=check)
    assert got[0] == TextDelta("a") and isinstance(got[1], Failed) and len(got) == 2
    assert source.closed  # closed in order, not left to the garbage collector
    assert meter.settled == [({"prompt_tokens": 11, "completion_tokens": 1}, "cancelled")]


async def test_a_stream_closed_before_it_was_read_bills_nothing() -> None:
    """Handed over started, then dropped unread (a background response stopped before its
    task ran): the engine was never asked, so no prompt is billed; one read and then cut
    bills the prompt's estimate, as a client that left does."""
    meter = Recorded()
    for reads, prompt in ((0, 0), (1, TICKET.prompt_estimate)):
        source = Source([TextDelta("a"), Finish("stop")])
        stage = await started(meter._stream(source.run(), TICKET, False, None))  # type: ignore[arg-type]
        for _ in range(reads):
            await anext(stage)
        await aclose(stage)
        usage = {"prompt_tokens": prompt, "completion_tokens": reads}
        assert meter.settled[-1] == (usage, "cancelled")
