"""Operators' alias moves (``corral models promote``), kept in the database so every
server sharing it follows them; servers reload them every ``REFRESH_S`` seconds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import TypeVar

from sqlalchemy import delete, select

from corral.catalog.schema import Catalog, Pin
from corral.core.errors import InvalidRequestError
from corral.storage.db import Database
from corral.storage.tables import AliasPinRow

log = logging.getLogger(__name__)

REFRESH_S = 5.0
T = TypeVar("T")


class AliasPins:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def load(self) -> dict[str, Pin]:
        async with self._db.session() as s:
            rows = await s.scalars(select(AliasPinRow))
            return {r.alias: Pin(r.alias, r.snapshot_id, _day(r.pinned_at)) for r in rows}

    async def pin(self, catalog: Catalog, alias: str, snapshot_id: str, reason: str) -> str | None:
        """Point ``alias`` at ``snapshot_id`` from today; returns what it pointed to."""
        refused = catalog.pinnable(alias, snapshot_id)
        if refused is not None:
            raise InvalidRequestError(refused, param="snapshot")
        current = catalog.target(alias)
        previous = current.id if current is not None else None
        async with self._db.begin() as s:
            await s.execute(delete(AliasPinRow).where(AliasPinRow.alias == alias))
            s.add(
                AliasPinRow(
                    alias=alias,
                    snapshot_id=snapshot_id,
                    previous=previous,
                    reason=reason,
                    pinned_at=datetime.now(UTC),
                )
            )
        return previous

    async def unpin(self, alias: str) -> bool:
        async with self._db.begin() as s:
            result = await s.execute(delete(AliasPinRow).where(AliasPinRow.alias == alias))
        return bool(result.rowcount)

    async def follow(self, catalog: Catalog) -> None:
        """Keep ``catalog.pins`` current (a task for the server's lifetime)."""
        while True:
            try:
                catalog.pins = await self.load()
            except Exception:  # retried next time; said, so a database gone is seen
                log.warning("reading alias pins failed; retrying in %ss", REFRESH_S, exc_info=True)
            await asyncio.sleep(REFRESH_S)


def _day(moment: datetime) -> date:
    return moment.date()


def with_pins(db_url: str, action: Callable[[AliasPins], Awaitable[T]]) -> T:
    """Run one action on the pins from a command line (its own event loop and engine)."""

    async def run() -> T:
        db = Database(db_url)
        try:
            return await action(AliasPins(db))
        finally:
            await db.close()

    return asyncio.run(run())


def read_pins(db_url: str) -> dict[str, Pin]:
    """The pins, for a command line (empty when the database has none yet)."""
    try:
        return with_pins(db_url, AliasPins.load)
    except Exception:  # no database or no table yet: nothing was ever promoted
        return {}
