from __future__ import annotations

from sqlalchemy import inspect

from corral.storage.db import Database, async_url, sync_url, upgrade


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
