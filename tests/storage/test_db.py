from __future__ import annotations

import asyncio

from sqlalchemy import bindparam, insert, inspect, select, update

from corral.core.clock import now
from corral.storage.db import Database, async_url, sync_url, upgrade
from corral.storage.tables import Organization


def test_urls() -> None:
    assert async_url("sqlite:////x/y.db") == "sqlite+aiosqlite:////x/y.db"
    assert async_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert sync_url("sqlite:////x/y.db") == "sqlite:////x/y.db"


async def test_migrations_create_every_table(db_url: str) -> None:
    upgrade(db_url)
    upgrade(db_url)  # idempotent
    db = Database(db_url)
    async with db.engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await db.close()
    assert {"api_keys", "projects", "usage", "spend", "reservations", "rate_windows"} <= names


async def test_sqlite_uses_wal(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    upgrade(url)
    db = Database(url)
    async with db.engine.connect() as conn:
        mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
    await db.close()
    assert mode == "wal"


async def test_first_reads_one_row_and_sees_writes_at_once(db_url: str) -> None:
    """The key lookup's read (in place on SQLite) sees what another connection just
    committed: a revoked key is refused on the next request."""
    upgrade(db_url)
    db = Database(db_url)
    orgs = Organization.__table__
    query = select(orgs.c.name).where(orgs.c.id == bindparam("id"))
    try:
        assert await db.first(query, {"id": "org-x"}) is None
        async with db.engine.begin() as conn:
            await conn.execute(insert(orgs).values(id="org-x", name="X", created_at=now()))
        row = await db.first(query, {"id": "org-x"})
        assert row is not None and row.name == "X"
        async with db.engine.begin() as conn:
            await conn.execute(update(orgs).where(orgs.c.id == "org-x").values(name="Y"))
        row = await db.first(query, {"id": "org-x"})
        assert row is not None and row.name == "Y"
    finally:
        await db.close()


async def test_writes_take_turns_on_sqlite_and_all_land(db_url: str) -> None:
    """``writing`` serializes a process's transactions on SQLite (no busy-handler
    polling between its own connections); on PostgreSQL they overlap (row locks do the
    rest). Either way every write commits."""
    upgrade(db_url)
    db = Database(db_url)
    inside, most = 0, 0

    async def write(i: int) -> None:
        nonlocal inside, most
        async with db.writing() as conn:
            inside += 1
            most = max(most, inside)
            stamp = now()
            await conn.execute(
                insert(Organization).values(id=f"org-w{i}", name=f"w{i}", created_at=stamp)
            )
            await asyncio.sleep(0.05)
            inside -= 1

    await asyncio.gather(*(write(i) for i in range(8)))
    async with db.engine.connect() as conn:
        ids = (await conn.execute(select(Organization.id))).scalars().all()
    await db.close()
    assert {f"org-w{i}" for i in range(8)} <= set(ids)
    assert most == 1 if db.is_sqlite else most > 1
