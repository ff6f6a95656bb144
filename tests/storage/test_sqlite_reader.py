from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import bindparam, insert, select

from corral.storage.db import Database, upgrade
from corral.storage.sqlite_reader import SQLiteReader
from corral.storage.tables import ApiKey

KEYS = ApiKey.__table__
QUERY = select(
    KEYS.c.id, KEYS.c.is_admin, KEYS.c.allowed_models, KEYS.c.expires_at, KEYS.c.rpm
).where(KEYS.c.secret_hash == bindparam("digest"))


async def test_rows_match_what_sqlalchemy_reads(tmp_path: Path) -> None:
    """Booleans, JSON and dates come back as the SQLAlchemy engine gives them."""
    url = f"sqlite:///{tmp_path}/r.db"
    upgrade(url)
    db = Database(url)
    moment = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    async with db.engine.begin() as conn:
        await conn.execute(
            insert(KEYS).values(
                id="key-a",
                prefix="sk-a",
                secret_hash="d1",
                is_admin=True,
                allowed_models=["m1", "m2"],
                created_at=moment,
                expires_at=moment,
            )
        )
        expected = (await conn.execute(QUERY, {"digest": "d1"})).one()
    reader = SQLiteReader(f"{tmp_path}/r.db", db.engine.dialect)
    try:
        row = reader.first(QUERY, {"digest": "d1"})
        assert tuple(row) == tuple(expected)
        assert row.is_admin is True and row.allowed_models == ["m1", "m2"]
        assert isinstance(row.expires_at, datetime) and row.rpm is None
        assert reader.first(QUERY, {"digest": "missing"}) is None
    finally:
        reader.close()
        await db.close()


def test_reader_never_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/q.db"
    upgrade(url)
    reader = SQLiteReader(f"{tmp_path}/q.db", Database(url).engine.dialect)
    reader.first(QUERY, {"digest": "x"})
    conn = reader._connection()
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM api_keys")
    reader.close()
