"""The database handle: an async engine for serving, migrations with Alembic at start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

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

    def begin(self) -> Any:
        """A session in a transaction: ``async with db.begin() as s: ...``."""
        return self.session.begin()

    async def close(self) -> None:
        await self.engine.dispose()


def sync_engine(url: str) -> Any:
    """A synchronous engine on the same database (the training worker's)."""
    from sqlalchemy import create_engine

    engine = create_engine(sync_url(url), pool_pre_ping=True)
    if url.startswith("sqlite") or sync_url(url).startswith("sqlite"):
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
