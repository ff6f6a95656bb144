"""Stored Responses API responses: what ``previous_response_id``, retrieve, delete and
input items read. Each belongs to the project that made it; others are told it does not
exist."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from corral.core.clock import aware, now
from corral.core.errors import NotFoundError
from corral.protocol.responses import ResponseObject
from corral.storage.db import Database
from corral.storage.tables import StoredResponse

Item = dict[str, Any]


@dataclass(frozen=True)
class Stored:
    response: ResponseObject
    input_items: list[Item]
    history: list[Item]
    worker: str | None = None  # the process running it (background), while it runs
    heartbeat_at: datetime | None = None

    def context(self) -> list[Item]:
        """What a response continuing from this one starts from: all it saw, then what it
        said."""
        return [*self.history, *(o.model_dump() for o in self.response.output)]


RUNNING = ("queued", "in_progress")


def _same(column: Any, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


def stored_as(stored: Stored, response: ResponseObject) -> Stored:
    return Stored(response, stored.input_items, stored.history)


def _missing(response_id: str, param: str = "response_id") -> NotFoundError:
    return NotFoundError(f"Response with id '{response_id}' not found.", param=param)


class ResponseStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(self, scope: str, stored: Stored) -> None:
        row = StoredResponse(
            id=stored.response.id,
            scope=scope,
            created_at=datetime.now(UTC),
            response=stored.response.model_dump(mode="json"),
            input_items=stored.input_items,
            history=stored.history,
            worker=stored.worker,
            heartbeat_at=now() if stored.worker else None,
        )
        async with self._db.begin() as s:
            s.add(row)

    async def update(self, scope: str, response: ResponseObject) -> None:
        """A stored response's new state (a background response as it runs); a finished
        one has no worker any more."""
        values: dict[str, Any] = {"response": response.model_dump(mode="json")}
        if response.status not in RUNNING:
            values["worker"] = None
        async with self._db.begin() as s:
            await s.execute(
                update(StoredResponse)
                .where(StoredResponse.id == response.id, StoredResponse.scope == scope)
                .values(**values)
            )

    async def beat(self, response_id: str, worker: str) -> None:
        async with self._db.begin() as s:
            await s.execute(
                update(StoredResponse)
                .where(StoredResponse.id == response_id, StoredResponse.worker == worker)
                .values(heartbeat_at=now())
            )

    async def fail_if_abandoned(
        self, scope: str, stored: Stored, stale_after: timedelta, error: dict[str, Any]
    ) -> Stored:
        """``stored`` as ``failed`` with ``error`` when it is still running but its worker
        has not beaten for ``stale_after`` (that process stopped); otherwise as it is. The
        update holds only if nothing changed since it was read (its worker did not just
        beat or finish it)."""
        response, beat = stored.response, aware(stored.heartbeat_at)
        if response.status not in RUNNING or (beat is not None and beat > now() - stale_after):
            return stored
        failed = response.model_copy(update={"status": "failed", "error": error})
        async with self._db.begin() as s:
            result = await s.execute(
                update(StoredResponse)
                .where(
                    StoredResponse.id == response.id,
                    StoredResponse.scope == scope,
                    _same(StoredResponse.worker, stored.worker),
                    _same(StoredResponse.heartbeat_at, stored.heartbeat_at),
                )
                .values(response=failed.model_dump(mode="json"), worker=None)
            )
        return (
            await self.get(scope, response.id)
            if result.rowcount != 1
            else stored_as(stored, failed)
        )

    async def get(self, scope: str, response_id: str, param: str = "response_id") -> Stored:
        async with self._db.session() as s:
            row = await s.scalar(
                select(StoredResponse).where(
                    StoredResponse.id == response_id, StoredResponse.scope == scope
                )
            )
        if row is None:
            raise _missing(response_id, param)
        response = ResponseObject.model_validate(row.response)
        return Stored(response, row.input_items, row.history, row.worker, row.heartbeat_at)

    async def delete(self, scope: str, response_id: str) -> None:
        async with self._db.begin() as s:
            result = await s.execute(
                delete(StoredResponse).where(
                    StoredResponse.id == response_id, StoredResponse.scope == scope
                )
            )
        if not result.rowcount:
            raise _missing(response_id)
