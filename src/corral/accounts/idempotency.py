"""`Idempotency-Key`: the same key (per project) within the TTL replays the stored
response instead of generating, and billing, again."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update

from corral.core.errors import ConflictError, InvalidRequestError
from corral.storage.db import Database
from corral.storage.tables import IdempotentResponse

MAX_KEY_LENGTH = 256


@dataclass(frozen=True)
class Stored:
    status_code: int
    body: str


def request_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


class Idempotency:
    def __init__(self, db: Database, ttl_s: int) -> None:
        self._db = db
        self._ttl = timedelta(seconds=ttl_s)

    async def begin(self, scope: str, key: str, digest: str) -> Stored | None:
        """Claim the key (None: go ahead) or return the response stored under it."""
        if not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidRequestError(
                f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.",
                param="Idempotency-Key",
            )
        now = datetime.now(UTC)
        insert = self._db.insert(IdempotentResponse)
        async with self._db.begin() as s:
            claimed = await s.execute(
                insert.values(scope=scope, key=key, request_hash=digest, created_at=now)
                .on_conflict_do_nothing()
                .returning(IdempotentResponse.key)
            )
            if claimed.first() is not None:
                return None
            row = await s.scalar(
                select(IdempotentResponse).where(
                    IdempotentResponse.scope == scope, IdempotentResponse.key == key
                )
            )
            assert row is not None
            created = (
                row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
            )
            if created < now - self._ttl:  # expired: claim it afresh
                await s.execute(
                    update(IdempotentResponse)
                    .where(IdempotentResponse.scope == scope, IdempotentResponse.key == key)
                    .values(request_hash=digest, created_at=now, status_code=None, body=None)
                )
                return None
        if row.request_hash != digest:
            raise InvalidRequestError(
                "This Idempotency-Key was used with a different request body.",
                param="Idempotency-Key",
                code="idempotency_key_reused",
            )
        if row.status_code is None or row.body is None:
            raise ConflictError(
                "A request with this Idempotency-Key is still in progress.",
                headers={"retry-after": "1"},
            )
        return Stored(row.status_code, row.body)

    async def finish(self, scope: str, key: str, status_code: int, body: str) -> None:
        async with self._db.begin() as s:
            await s.execute(
                update(IdempotentResponse)
                .where(IdempotentResponse.scope == scope, IdempotentResponse.key == key)
                .values(status_code=status_code, body=body)
            )

    async def abandon(self, scope: str, key: str) -> None:
        """A failed request frees its key so that a retry runs."""
        async with self._db.begin() as s:
            await s.execute(
                delete(IdempotentResponse).where(
                    IdempotentResponse.scope == scope, IdempotentResponse.key == key
                )
            )
