"""Requests that start with one long prefix take turns until it is computed once."""

from __future__ import annotations

import asyncio

import pytest

from corral.engines import prefix_flights
from corral.engines.prefix_flights import MIN_CHARS, PrefixFlights, prefix_key

LONG = "Instructions. " * (MIN_CHARS // 10)


def body(system: str, ask: str = "Go.") -> dict[str, object]:
    return {"messages": [{"role": "system", "content": system}, {"role": "user", "content": ask}]}


async def run(flights: PrefixFlights, b: dict[str, object], log: list[str], name: str) -> None:
    async with flights.turn(b):
        log.append(f"{name} start")
        await asyncio.sleep(0.05)
        log.append(f"{name} end")


async def test_a_second_request_with_the_prefix_waits_for_the_first_to_end() -> None:
    flights, log = PrefixFlights(), []
    await asyncio.gather(
        run(flights, body(LONG, "a"), log, "a"),
        run(flights, body(LONG, "b"), log, "b"),
        run(flights, body(LONG, "c"), log, "c"),
    )
    assert log[:2] == ["a start", "a end"]
    # the followers one at a time too: released together they would take two slots,
    # and only one holds the prefix
    assert log[2:] in (
        ["b start", "b end", "c start", "c end"],
        ["c start", "c end", "b start", "b end"],
    )


async def test_other_prefixes_short_ones_and_computed_ones_do_not_wait() -> None:
    flights, log = PrefixFlights(), []
    await asyncio.gather(
        run(flights, body(LONG + "1"), log, "a"), run(flights, body(LONG + "2"), log, "b")
    )
    assert log[:2] == ["a start", "b start"]  # two prefixes: computed side by side
    log.clear()
    await asyncio.gather(
        run(flights, body("Short."), log, "a"), run(flights, body("Short."), log, "b")
    )
    assert log[:2] == ["a start", "b start"]
    log.clear()
    await asyncio.gather(
        run(flights, body(LONG + "1"), log, "a"), run(flights, body(LONG + "1"), log, "b")
    )
    assert log[:2] == ["a start", "b start"]  # computed already: in the engine's cache
    assert prefix_key({"messages": [{"role": "user", "content": LONG}]}) is None


async def test_a_failed_leader_marks_nothing_computed_and_a_follower_waits_a_bounded_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flights = PrefixFlights()
    with pytest.raises(RuntimeError):
        async with flights.turn(body(LONG)):
            raise RuntimeError("the engine refused it")
    assert not flights._computed
    monkeypatch.setattr(prefix_flights, "MAX_WAIT_S", 0.05)
    entered = asyncio.Event()

    async def slow_leader() -> None:
        async with flights.turn(body(LONG)):
            entered.set()
            await asyncio.sleep(5)

    leader = asyncio.create_task(slow_leader())
    await entered.wait()
    async with asyncio.timeout(2):  # the follower goes on although the leader has not ended
        async with flights.turn(body(LONG, "other")):
            pass
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader


async def test_followers_go_one_at_a_time_each_waited_for_at_most_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bound is for each one ahead (what computing the prefix would take), so the
    third request, behind two that each take most of it, still reads the prefix in turn."""
    monkeypatch.setattr(prefix_flights, "WAIT_S_PER_1000_CHARS", 0.5 / (len(LONG) / 1000))
    flights, log = PrefixFlights(), []

    async def take(name: str, seconds: float) -> None:
        async with flights.turn(body(LONG, name)):
            log.append(f"{name} start")
            await asyncio.sleep(seconds)
            log.append(f"{name} end")

    await asyncio.gather(take("a", 0.3), take("b", 0.3), take("c", 0.01))
    assert log == ["a start", "a end", "b start", "b end", "c start", "c end"]
