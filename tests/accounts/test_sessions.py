"""Console sessions: only hashes stored, CSRF compared in constant time, absolute and idle
expiry, sign-out; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

import corral.accounts.sessions as sessions_module
from corral.accounts.sessions import SessionStore
from corral.core.clock import now
from corral.storage.db import Database, upgrade
from corral.storage.tables import ConsoleSessionRow


class Clock:
    def __init__(self) -> None:
        self.at = now()

    def __call__(self) -> datetime:
        return self.at


async def test_sessions_live_expire_and_end(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    upgrade(db_url)
    db = Database(db_url)
    clock = Clock()
    monkeypatch.setattr(sessions_module, "now", clock)
    store = SessionStore(db, ttl_s=3600, idle_s=600)
    try:
        token, session = await store.create("hmac-of-the-key")
        async with db.session() as s:
            row = (await s.scalars(select(ConsoleSessionRow))).one()
        assert row.id != token and token not in (row.id, row.key_hash, row.csrf)
        got = await store.get(token)
        assert got is not None and got.key_hash == "hmac-of-the-key"
        assert got.csrf_matches(session.csrf)
        assert not got.csrf_matches(None) and not got.csrf_matches(session.csrf + "x")
        assert await store.get("not-a-token") is None
        assert await store.get("x" * 500) is None
        # used within the idle time: it stays, and its use is recorded
        for _ in range(5):
            clock.at += timedelta(seconds=500)
            assert await store.get(token) is not None
        # past the absolute lifetime it ends, however recently used
        clock.at += timedelta(seconds=1200)
        assert await store.get(token) is None
        # idle too long: ended
        token, _ = await store.create(None)
        clock.at += timedelta(seconds=601)
        assert await store.get(token) is None
        # sign-out ends it at once
        token, _ = await store.create(None)
        await store.end(token)
        assert await store.get(token) is None
        # expired rows are swept as new sessions are made
        clock.at += timedelta(days=1)
        await store.create(None)
        async with db.session() as s:
            assert len((await s.scalars(select(ConsoleSessionRow))).all()) == 1
    finally:
        await db.close()
