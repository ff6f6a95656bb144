"""Requests and tokens per minute, per key and per project, shared through the database.

Fixed one-minute windows counted with atomic upserts (``INSERT … ON CONFLICT DO UPDATE
… RETURNING``), so every corral process on one database sees the same counts. A
request over a limit is uncounted again and refused; concurrency caps are per process.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import update

from corral.accounts.keys import Principal
from corral.core.errors import RateLimitError
from corral.storage.db import Database
from corral.storage.tables import RateWindow

WINDOW_S = 60


@dataclass
class Quota:
    """One limit's state after this request was counted."""

    limit: int
    used: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass
class LimitState:
    requests: Quota | None = None
    tokens: Quota | None = None
    reset_s: float = 0.0
    scopes: list[str] = field(default_factory=list)
    window: int = 0

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        reset = f"{max(1, math.ceil(self.reset_s))}s"
        for name, quota in (("requests", self.requests), ("tokens", self.tokens)):
            if quota is not None:
                out[f"x-ratelimit-limit-{name}"] = str(quota.limit)
                out[f"x-ratelimit-remaining-{name}"] = str(quota.remaining)
                out[f"x-ratelimit-reset-{name}"] = reset
        return out


def _tighter(current: Quota | None, limit: int | None, used: int) -> Quota | None:
    if limit is None:
        return current
    candidate = Quota(limit, used)
    if current is None or candidate.remaining < current.remaining:
        return candidate
    return current


class RateLimiter:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._in_flight: Counter[str] = Counter()

    async def _count(self, scope: str, window: int, requests: int, tokens: int) -> tuple[int, int]:
        stmt = self._db.insert(RateWindow).values(
            scope=scope, window=window, requests=requests, tokens=tokens
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["scope", "window"],
            set_={
                "requests": RateWindow.requests + stmt.excluded.requests,
                "tokens": RateWindow.tokens + stmt.excluded.tokens,
            },
        ).returning(RateWindow.requests, RateWindow.tokens)
        async with self._db.begin() as s:
            row = (await s.execute(stmt)).one()
        return int(row[0]), int(row[1])

    async def _uncount(self, scope: str, window: int, requests: int, tokens: int) -> None:
        async with self._db.begin() as s:
            await s.execute(
                update(RateWindow)
                .where(RateWindow.scope == scope, RateWindow.window == window)
                .values(requests=RateWindow.requests - requests, tokens=RateWindow.tokens - tokens)
            )

    async def admit(self, who: Principal, tokens: int) -> LimitState:
        """Count one request and its prompt tokens; refuse (uncounted) over any limit."""
        now = time.time()
        window = int(now // WINDOW_S)
        state = LimitState(reset_s=(window + 1) * WINDOW_S - now, window=window)
        limits = [
            (f"key:{who.key_id}", who.key_rpm, who.key_tpm),
            (f"project:{who.project_id}", who.project_rpm, who.project_tpm),
        ]
        for scope, rpm, tpm in limits:
            if (rpm is None and tpm is None) or scope.endswith(":None"):
                continue
            used_requests, used_tokens = await self._count(scope, window, 1, tokens)
            state.scopes.append(scope)
            over = (rpm is not None and used_requests > rpm) or (
                tpm is not None and used_tokens > tpm
            )
            if over:
                for counted in state.scopes:
                    await self._uncount(counted, window, 1, tokens)
                kind = "requests" if rpm is not None and used_requests > rpm else "tokens"
                raise RateLimitError(
                    f"Rate limit reached for {scope.split(':')[0]} on {kind} per minute "
                    f"(limit {rpm if kind == 'requests' else tpm}). Try again in "
                    f"{math.ceil(state.reset_s)}s.",
                    code="rate_limit_exceeded",
                    headers={"retry-after": str(max(1, math.ceil(state.reset_s)))},
                )
            state.requests = _tighter(state.requests, rpm, used_requests)
            state.tokens = _tighter(state.tokens, tpm, used_tokens)
        return state

    async def reconcile(self, state: LimitState, tokens: int) -> None:
        """Add (or take back) tokens once the real count is known."""
        for scope in state.scopes:
            if tokens:
                await self._count(scope, state.window, 0, tokens)

    def enter(self, who: Principal) -> list[str]:
        """Per-process concurrency caps; returns the scopes to release."""
        held: list[str] = []
        for scope, cap in (
            (f"key:{who.key_id}", who.key_concurrent),
            (f"project:{who.project_id}", who.project_concurrent),
        ):
            if cap is None:
                continue
            if self._in_flight[scope] >= cap:
                self.leave(held)
                raise RateLimitError(
                    f"Too many concurrent requests for {scope.split(':')[0]} (limit {cap}).",
                    code="concurrency_limit_exceeded",
                    headers={"retry-after": "1"},
                )
            self._in_flight[scope] += 1
            held.append(scope)
        return held

    def leave(self, scopes: list[str]) -> None:
        for scope in scopes:
            self._in_flight[scope] -= 1
