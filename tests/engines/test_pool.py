from __future__ import annotations

import time

import httpx
import pytest

from corral.core.errors import EngineUnavailableError
from corral.engines.pool import Pool, PoolSettings, Replica


def test_least_outstanding_wins() -> None:
    pool = Pool([Replica("http://a"), Replica("http://b"), Replica("http://c")])
    pool.replicas[0].outstanding = 3
    pool.replicas[1].outstanding = 1
    pool.replicas[2].outstanding = 2
    assert pool.pick().url == "http://b"
    assert pool.pick(exclude={"http://b"}).url == "http://c"


def test_ejection_and_cap() -> None:
    pool = Pool(
        [Replica("http://a"), Replica("http://b")], PoolSettings(eject_after=2, max_concurrent=1)
    )
    a, b = pool.replicas
    pool.failed(a)
    assert pool.pick(exclude={"http://b"}) is a  # one failure: still in
    pool.failed(a)
    assert pool.pick() is b  # ejected
    b.outstanding = 1  # at its cap
    with pytest.raises(EngineUnavailableError) as err:
        pool.pick()
    assert err.value.status == 503 and err.value.headers["retry-after"] == "1"


def test_affinity_sticks_to_one_replica() -> None:
    pool = Pool([Replica(f"http://r{i}") for i in range(4)], PoolSettings(affinity=True))
    first = pool.pick("You are a pirate.")
    pool.replicas[0].outstanding = pool.replicas[1].outstanding = 5
    assert all(pool.pick("You are a pirate.") is first for _ in range(5))


def test_a_tried_replica_is_better_than_none() -> None:
    pool = Pool([Replica("http://a"), Replica("http://b")])
    a, b = pool.replicas
    b.healthy = False
    assert pool.pick(exclude={"http://a"}) is a


async def test_a_slow_health_check_is_not_death_but_a_refusal_is() -> None:
    slow = Replica("http://slow/v1")
    dead = Replica("http://dead/v1")
    pool = Pool([slow, dead], PoolSettings(eject_after=2))

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "slow":
            raise httpx.ReadTimeout("busy", request=request)
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        await pool.check(http)
        assert slow.healthy and not dead.healthy
        await pool.check(http)
        assert not slow.healthy  # the second timeout in a row


async def test_health_probes_leave_no_connection_open() -> None:
    """llama.cpp's server polls every idle kept-alive connection 100 times a second, so a
    probe asks the replica to close its connection, and sends the replica's key."""
    replica = Replica("http://engine/v1", api_key="k")
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": []})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        await Pool([replica]).check(http)
    assert replica.healthy
    assert seen[0].headers["connection"] == "close"
    assert seen[0].headers["authorization"] == "Bearer k"


async def test_a_replica_answering_lately_is_not_probed() -> None:
    """Under load the answers say a replica is alive: probing it too costs the engine a
    connection beside its decoding threads. Once it goes quiet it is probed again, and an
    unhealthy replica is always probed (that is how it comes back)."""
    busy, quiet, down = (
        Replica("http://busy/v1"),
        Replica("http://quiet/v1"),
        Replica("http://down/v1"),
    )
    pool = Pool([busy, quiet, down], PoolSettings(health_interval_s=5.0))
    busy.answered_at = down.answered_at = time.monotonic()
    down.healthy = False
    probed: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        probed.append(str(request.url.host))
        return httpx.Response(200, json={"data": []})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        await pool.check(http)
        assert probed == ["quiet", "down"] and down.healthy
        busy.answered_at -= 10  # quiet for two intervals
        probed.clear()
        await pool.check(http)
    assert probed == ["busy", "quiet"]  # down is healthy again, and answered lately


async def test_an_answer_resets_the_missed_checks_as_a_probe_would() -> None:
    """Two timeouts with answers between them are not two in a row: a busy replica that
    answers is not marked down by unrelated slow probes minutes apart."""
    replica = Replica("http://busy/v1")
    pool = Pool([replica], PoolSettings(eject_after=2, health_interval_s=5.0))

    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("busy", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        await pool.check(http)
        assert replica.healthy and replica.missed_checks == 1
        replica.answered_at = time.monotonic()
        await pool.check(http)  # answered lately: not probed, counted as alive
        replica.answered_at = 0.0
        await pool.check(http)
    assert replica.healthy and replica.missed_checks == 1
