"""Console sessions: a signed-in browser, kept on the server.

The browser holds only a random token in an HttpOnly cookie; the table holds a SHA-256
of that token, the signed-in key's HMAC (never the key) and the session's CSRF token.
Each request re-checks the key through ``KeyService``, so revoking a key ends its
sessions at once. Sessions end after an absolute lifetime and after an idle time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, update

from corral.core.clock import aware, now
from corral.storage.db import Database
from corral.storage.tables import ConsoleSessionRow

# seen_at is written at most this often: a page load is several requests.
SEEN_GRANULARITY = timedelta(seconds=60)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ConsoleSession:
    id: str  # the stored digest, not the cookie's token
    key_hash: str | None  # None: an open-mode session (no keys configured)
    csrf: str
    expires_at: datetime
    project_id: str | None = None  # the project an admin's session works in

    def csrf_matches(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), self.csrf.encode())


class SessionStore:
    def __init__(self, db: Database, ttl_s: int, idle_s: int) -> None:
        self._db = db
        self._ttl = timedelta(seconds=ttl_s)
        self._idle = timedelta(seconds=idle_s)

    async def create(self, key_hash: str | None) -> tuple[str, ConsoleSession]:
        """A new session: the cookie's token (returned once) and the session."""
        token = secrets.token_urlsafe(32)
        at = now()
        row = ConsoleSessionRow(
            id=_digest(token),
            key_hash=key_hash,
            csrf=secrets.token_urlsafe(32),
            created_at=at,
            seen_at=at,
            expires_at=at + self._ttl,
        )
        async with self._db.begin() as s:
            # Expired sessions go as new ones come: the table stays the size of its use.
            await s.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.expires_at < at))
            s.add(row)
        return token, ConsoleSession(row.id, key_hash, row.csrf, row.expires_at)

    async def get(self, token: str) -> ConsoleSession | None:
        """The live session of a cookie's token, or None (unknown, expired or idle)."""
        if not token or len(token) > 128:
            return None
        digest = _digest(token)
        async with self._db.session() as s:
            row = await s.get(ConsoleSessionRow, digest)
        if row is None:
            return None
        at = now()
        expires, seen = aware(row.expires_at), aware(row.seen_at)
        if expires <= at or seen + self._idle <= at:
            await self.end(token)
            return None
        if at - seen >= SEEN_GRANULARITY:
            async with self._db.begin() as s:
                await s.execute(
                    update(ConsoleSessionRow)
                    .where(ConsoleSessionRow.id == digest)
                    .values(seen_at=at)
                )
        return ConsoleSession(row.id, row.key_hash, row.csrf, expires, row.project_id)

    async def work_in(self, session: ConsoleSession, project_id: str | None) -> None:
        """The project an admin's session acts in from now on (None: its own scope)."""
        async with self._db.begin() as s:
            await s.execute(
                update(ConsoleSessionRow)
                .where(ConsoleSessionRow.id == session.id)
                .values(project_id=project_id)
            )

    async def end(self, token: str) -> None:
        async with self._db.begin() as s:
            await s.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.id == _digest(token)))
