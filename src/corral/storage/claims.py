"""Durable jobs claimed from the database, shared by the replicas on it (batches, eval
runs): a job is claimed with a conditional update (two workers never run one twice),
heartbeated while it runs, let go when its worker stops beating (another replica, or
this one after a restart, takes it up), and let go at once on a clean shutdown.

``ClaimedJobs`` is that protocol over one table; what differs between job kinds is
which rows are claimable and what claiming and letting go write (an eval run moves
between ``queued`` and ``in_progress``; a batch stays ``in_progress`` and only loses
its worker). ``poll_forever`` is the loop each worker runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, select, update

from corral.core.clock import aware, now
from corral.core.ids import new_id
from corral.storage.db import Database

log = logging.getLogger(__name__)


def worker_id() -> str:
    """This process's name as a job's ``worker``: host, pid and a random tail."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id('w')[-8:]}"


@dataclass
class ClaimedJobs:
    """The claim protocol over ``table`` (columns ``id``, ``status``, ``worker``,
    ``heartbeat_at``, ``created_at``). ``running``: statuses a worker holds a job in;
    ``claimable``: the rows a worker may take; ``on_claim`` / ``on_release``: the values
    written when one is taken / let go (``worker`` and ``heartbeat_at`` are added)."""

    db: Database
    table: Any
    kind: str  # for the log: "batch", "eval run"
    running: tuple[str, ...]
    claimable: Callable[[], ColumnElement[bool]]
    on_claim: dict[str, Any] = field(default_factory=dict)
    on_release: dict[str, Any] = field(default_factory=dict)
    me: str = field(default_factory=worker_id)

    async def claim(self) -> str | None:
        """The oldest claimable job, now this worker's; None when there is none (or
        another worker took it first)."""
        t = self.table
        async with self.db.begin() as s:
            candidate = await s.scalar(
                select(t.id).where(self.claimable()).order_by(t.created_at).limit(1)
            )
            if candidate is None:
                return None
            result = await s.execute(
                update(t)
                .where(t.id == candidate, self.claimable())
                .values(**self.on_claim, worker=self.me, heartbeat_at=now())
            )
        return candidate if result.rowcount == 1 else None

    async def beat(self, job_id: str) -> str:
        """Mark the job alive; returns its status ("deleted" when it is gone), so the
        worker notices a cancel."""
        t = self.table
        async with self.db.begin() as s:
            await s.execute(
                update(t).where(t.id == job_id, t.worker == self.me).values(heartbeat_at=now())
            )
            status = await s.scalar(select(t.status).where(t.id == job_id))
        return str(status) if status is not None else "deleted"

    async def recover(self, stale_after: timedelta) -> None:
        """Jobs whose worker stopped beating for ``stale_after`` are let go."""
        t, cutoff = self.table, now() - stale_after
        async with self.db.begin() as s:
            rows = await s.scalars(
                select(t).where(t.status.in_(self.running), t.worker.is_not(None))
            )
            for row in rows:
                beat = aware(row.heartbeat_at)
                if row.worker != self.me and (beat is None or beat < cutoff):
                    log.warning("%s %s lost its worker %s", self.kind, row.id, row.worker)
                    for name, value in {**self.on_release, "worker": None}.items():
                        setattr(row, name, value)

    async def release(self) -> None:
        """Let go of this worker's jobs (shutting down): taken up again at once, instead
        of after ``stale_after``."""
        t = self.table
        async with self.db.begin() as s:
            await s.execute(
                update(t)
                .where(t.worker == self.me, t.status.in_(self.running))
                .values(**self.on_release, worker=None)
            )


async def poll_forever(
    jobs: ClaimedJobs,
    execute: Callable[[str], Awaitable[None]],
    wake: asyncio.Event,
    poll_s: float,
    stale_after: timedelta,
) -> None:
    """Claim and run jobs one after another; look for lost ones every quarter of
    ``stale_after`` (one is only noticed after it, so looking at every poll would cost CPU
    beside the decoding engine and gain nothing); sleep ``poll_s`` or until woken."""
    recovered_at = -math.inf
    while True:
        try:
            if time.monotonic() - recovered_at >= stale_after.total_seconds() / 4:
                await jobs.recover(stale_after)
                recovered_at = time.monotonic()
            job_id = await jobs.claim()
            if job_id is not None:
                await execute(job_id)
                continue
        except Exception:  # one bad job or a database hiccup must not stop the worker
            log.exception("%s worker iteration failed", jobs.kind)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), poll_s)
        wake.clear()
