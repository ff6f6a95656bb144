"""Batched settlement writes on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from corral.accounts.keys import KeyService
from corral.accounts.settlements import MAX_BATCH, Entry, SettlementWriter
from corral.storage.db import Database, upgrade
from corral.storage.tables import Reservation, Spend, Usage

PERIOD = "2026-11"


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    upgrade(db_url)
    database = Database(db_url)
    yield database
    await database.close()


async def project(db: Database) -> str:
    created = await KeyService(db, b"s", None).create_project(f"p{random.randrange(10**9)}")
    return created.id


def entry(project_id: str | None, request_id: str, cost: int, reserved: int = 0) -> Entry:
    row: dict[str, Any] = {
        "request_id": request_id,
        "created_at": datetime.now(UTC),
        "org_id": None,
        "project_id": project_id,
        "key_id": None,
        "model": "m",
        "endpoint": "chat",
        "prompt_tokens": 1,
        "cached_tokens": 0,
        "completion_tokens": 1,
        "reasoning_tokens": 0,
        "cost_nano": cost,
        "latency_ms": 1,
        "status": "ok",
    }
    return Entry(row, PERIOD, reserved)


async def reserve(db: Database, project_id: str, request_id: str, amount: int) -> None:
    async with db.begin() as s:
        spend = await s.get(Spend, (project_id, PERIOD))
        if spend is None:
            s.add(Spend(project_id=project_id, period=PERIOD, spent_nano=0, reserved_nano=amount))
        else:
            spend.reserved_nano += amount
        expires = datetime.now(UTC) + timedelta(minutes=15)
        s.add(
            Reservation(
                request_id=request_id,
                project_id=project_id,
                period=PERIOD,
                amount_nano=amount,
                expires_at=expires,
            )
        )


async def spend_of(db: Database, project_id: str) -> tuple[int, int]:
    async with db.session() as s:
        spend = await s.get(Spend, (project_id, PERIOD))
        assert spend is not None
        return spend.spent_nano, spend.reserved_nano


def count_commits(db: Database) -> list[int]:
    commits: list[int] = []
    event.listen(db.engine.sync_engine, "commit", lambda _: commits.append(1))
    return commits


async def test_a_burst_is_written_in_fewer_transactions(db: Database) -> None:
    writer = SettlementWriter(db)
    projects = [await project(db), await project(db)]
    for i in range(40):
        await reserve(db, projects[i % 2], f"req-{i}", 100)
    commits = count_commits(db)
    entries = [entry(projects[i % 2], f"req-{i}", 10 + i, reserved=100) for i in range(40)]
    charged = await asyncio.gather(*(writer.write(e) for e in entries))
    assert charged == [True] * 40
    # All 40 were queued before the writer's task first ran: one transaction.
    assert len(commits) == 1
    for k, project_id in enumerate(projects):
        cost = sum(10 + i for i in range(k, 40, 2))
        assert await spend_of(db, project_id) == (cost, 0)
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Usage)) == 40
        assert await s.scalar(select(func.count()).select_from(Reservation)) == 0


async def test_a_request_id_is_charged_once(db: Database) -> None:
    writer = SettlementWriter(db)
    project_id = await project(db)
    await reserve(db, project_id, "req-a", 100)
    first = entry(project_id, "req-a", 30, reserved=100)
    # Twice in one batch, then once more later (a retry after a crash).
    together = await asyncio.gather(writer.write(first), writer.write(first), writer.write(first))
    assert sorted(together) == [False, False, True]
    assert await writer.write(first) is False
    assert await spend_of(db, project_id) == (30, 0)


async def test_a_reservation_swept_already_is_not_freed_twice(db: Database) -> None:
    writer = SettlementWriter(db)
    project_id = await project(db)
    await reserve(db, project_id, "req-a", 100)
    async with db.begin() as s:  # what the sweeper does to a stale reservation
        await s.delete(await s.get(Reservation, "req-a"))
        spend = await s.get(Spend, (project_id, PERIOD))
        assert spend is not None
        spend.reserved_nano -= 100
    assert await writer.write(entry(project_id, "req-a", 30, reserved=100)) is True
    assert await spend_of(db, project_id) == (30, 0)


async def test_one_bad_row_does_not_lose_the_rest_of_its_batch(db: Database) -> None:
    writer = SettlementWriter(db)
    project_id = await project(db)
    bad = entry(project_id, "req-bad", 5)
    bad.row["status"] = None  # NOT NULL
    entries = [entry(project_id, f"req-{i}", 10) for i in range(5)]
    entries.insert(3, bad)
    outcomes = await asyncio.gather(*(writer.write(e) for e in entries), return_exceptions=True)
    assert [o for o in outcomes if isinstance(o, Exception)] != []
    assert isinstance(outcomes[3], Exception)
    assert [o for i, o in enumerate(outcomes) if i != 3] == [True] * 5
    assert await spend_of(db, project_id) == (50, 0)


async def test_requests_without_a_project_write_their_row_only(db: Database) -> None:
    writer = SettlementWriter(db)
    assert await writer.write(entry(None, "req-anon", 7)) is True
    async with db.session() as s:
        assert await s.scalar(select(Usage.cost_nano).where(Usage.request_id == "req-anon")) == 7
        assert await s.scalar(select(func.count()).select_from(Spend)) == 0


@pytest.mark.parametrize("when", ["before it ran", "while it wrote"])
async def test_a_stopped_writer_fails_its_waiters_instead_of_hanging(
    db: Database, when: str
) -> None:
    writer = SettlementWriter(db)
    project_id = await project(db)
    waiting = [asyncio.ensure_future(writer.write(entry(project_id, f"r{i}", 1))) for i in range(3)]
    await asyncio.sleep(0)  # the writes are queued and the writer's task created
    if when == "while it wrote":
        await asyncio.sleep(0)  # it took the batch and is inside the transaction
    task = writer._writer
    assert task is not None
    task.cancel()
    outcomes = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 10)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert await writer.write(entry(project_id, "after", 1)) is True  # a new writer starts


async def test_a_backlog_is_written_in_bounded_transactions(db: Database) -> None:
    writer = SettlementWriter(db)
    project_id = await project(db)
    commits = count_commits(db)
    n = 2 * MAX_BATCH + 7
    charged = await asyncio.gather(*(writer.write(entry(project_id, f"r{i}", 1)) for i in range(n)))
    assert charged == [True] * n
    assert len(commits) == 3
    assert await spend_of(db, project_id) == (n, 0)


async def test_a_database_failure_fails_the_batch_without_retrying_each(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = SettlementWriter(db)
    calls: list[int] = []

    async def gone(batch: list[Entry]) -> list[bool]:
        calls.append(len(batch))
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(writer, "_write", gone)
    outcomes = await asyncio.gather(
        *(writer.write(entry(None, f"r{i}", 1)) for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(o, OperationalError) for o in outcomes)
    assert calls == [5]  # a row-by-row retry would wait out the outage five more times
