"""The database handle: an async engine for serving, migrations with Alembic at start."""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Select, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from corral.storage.epoch import Epoch
from corral.storage.sqlite_reader import SQLiteReader

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def async_url(url: str) -> str:
    """Accept plain URLs and pick the async drivers (aiosqlite, psycopg 3)."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url.removeprefix(plain)
    return url


def sync_url(url: str) -> str:
    """The same database for Alembic, which runs synchronously."""
    url = async_url(url)
    return url.replace("sqlite+aiosqlite://", "sqlite://")


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer; busy_timeout: writers queue instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    def __init__(self, url: str) -> None:
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        # Pre-ping guards against server-side disconnects; a SQLite file has none, and
        # the ping is a round trip on every checkout (twice per API request).
        kwargs: dict[str, Any] = {"pool_pre_ping": not self.is_sqlite}
        if not self.is_sqlite:
            kwargs |= {"pool_size": 20, "max_overflow": 20}
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.session = async_sessionmaker(self.engine, expire_on_commit=False)
        # Per event loop: a Database outlives the loops of the CLI's asyncio.run calls.
        self._write_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
        self._write_locks = weakref.WeakKeyDictionary()
        path = make_url(self.url).database if self.is_sqlite else None
        # A memory database is per connection: no file for a reader or a change token.
        self._file = path if path and path != ":memory:" else None
        self._reader = (
            SQLiteReader(self._file, self.engine.dialect, busy_ms=50) if self._file else None
        )

    def epoch(self, name: str) -> Epoch | None:
        """A change token for some set of rows (see ``storage.epoch``); None where the
        database is not a local file."""
        return Epoch(Path(f"{self._file}-{name}.epoch")) if self._file else None

    async def first(self, statement: Select[Any], params: dict[str, Any]) -> Any:
        """The first row of a small indexed read (the API key of each request), with the
        selected columns as attributes, or None.

        On SQLite it runs in place on the event loop: a WAL read of one row takes tens of
        microseconds, while aiosqlite hands each step of it to its thread and back, which
        cost about 2 ms a request here. A reader that finds the file busy (rare under WAL)
        waits at most 50 ms, then takes the async path.
        """
        if self._reader is not None:
            try:
                return self._reader.first(statement, params)
            except sqlite3.Error:
                pass
        async with self.engine.connect() as conn:
            return (await conn.execute(statement, params)).first()

    def insert(self, table: Any) -> Any:
        """An INSERT in this database's dialect, for its ``ON CONFLICT`` clauses (the two
        dialects' classes differ, hence ``Any``)."""
        return (sqlite if self.is_sqlite else postgresql).insert(table)

    def begin(self) -> Any:
        """A session in a transaction: ``async with db.begin() as s: ...``."""
        return self.session.begin()

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncConnection]:
        """A Core transaction for the writes every request makes (usage, spend).

        On SQLite these take turns within the process. Two connections that write at
        once meet SQLite's busy handler, which polls with sleeps of 1, 2, 5, 10 … ms: at
        8 concurrent streams that held each request's end back by milliseconds, and the
        lock wakes the next writer the moment the last one commits.
        """
        if not self.is_sqlite:
            async with self.engine.begin() as conn:
                yield conn
            return
        loop = asyncio.get_running_loop()
        lock = self._write_locks.get(loop) or self._write_locks.setdefault(loop, asyncio.Lock())
        async with lock, self.engine.begin() as conn:
            yield conn

    async def close(self) -> None:
        await self.engine.dispose()
        if self._reader is not None:
            self._reader.close()


def sync_engine(url: str) -> Engine:
    """A synchronous engine on the same database (the training worker's)."""
    from sqlalchemy import create_engine

    sqlite = sync_url(url).startswith("sqlite")
    engine = create_engine(sync_url(url), pool_pre_ping=not sqlite)
    if sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def upgrade(url: str) -> None:
    """Apply Alembic migrations up to head (``corral db upgrade``; also at serve start)."""
    from alembic import command
    from alembic.config import Config

    sync = sync_url(url)
    if sync.startswith("sqlite:///"):
        Path(sync.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sync.replace("%", "%%"))
    command.upgrade(config, "head")


__all__ = ["AsyncSession", "Database", "upgrade"]
