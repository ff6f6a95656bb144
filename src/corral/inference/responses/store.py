"""Stored Responses API responses: what ``previous_response_id``, retrieve, delete and
input items read. Each belongs to the project that made it; others are told it does not
exist."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update

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

    def context(self) -> list[Item]:
        """What a response continuing from this one starts from: all it saw, then what it
        said."""
        return [*self.history, *(o.model_dump() for o in self.response.output)]


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
        )
        async with self._db.begin() as s:
            s.add(row)

    async def update(self, scope: str, response: ResponseObject) -> None:
        """A stored response's new state (a background response as it runs)."""
        async with self._db.begin() as s:
            await s.execute(
                update(StoredResponse)
                .where(StoredResponse.id == response.id, StoredResponse.scope == scope)
                .values(response=response.model_dump(mode="json"))
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
        return Stored(ResponseObject.model_validate(row.response), row.input_items, row.history)

    async def delete(self, scope: str, response_id: str) -> None:
        async with self._db.begin() as s:
            result = await s.execute(
                delete(StoredResponse).where(
                    StoredResponse.id == response_id, StoredResponse.scope == scope
                )
            )
        if not result.rowcount:
            raise _missing(response_id)
