"""The batch worker: a task in each API process that claims batches from the database
and runs their requests behind interactive traffic.

Behind: a batch request starts only while fewer than ``slots`` requests are in flight
in this process (interactive ones included). While no interactive traffic is seen,
batches fill the engine (``idle_concurrency`` requests, default ``slots``); while
interactive requests are in flight or were within ``quiet_s``, batches keep to a bounded
share (``concurrency``) and the requests past it are handed back: cancelled at once, and
run again later under the same request id (billed once). The engine runs what it is
given side by side, so a request of a batch that kept running would slow every
interactive token; handing it back costs the batch the tokens it had generated.
Durable: each finished request is committed with its answer; a batch is claimed with a
conditional update, heartbeated, and requeued when its worker stops beating (another
replica, or this one after a restart, resumes it after its last committed request).
Cancel and expiry are noticed at the next heartbeat.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from corral.accounts.keys import stored_principal
from corral.batches.lines import Line
from corral.batches.runner import BudgetExhausted, LineRunner, Outcome, line_request_id
from corral.batches.store import done_lines, finalize, input_lines
from corral.core.clock import aware, now
from corral.core.config import BatchSettings
from corral.core.errors import CorralError
from corral.core.ids import new_id
from corral.files import FileService
from corral.inference.admission import Admission, background
from corral.storage.claims import ClaimedJobs, poll_forever
from corral.storage.db import Database
from corral.storage.tables import BatchLineRow, BatchRow

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
RUNNING = ("in_progress", "cancelling")
YIELD_S = 0.02  # how often a waiting batch request looks for free capacity


class BatchWorker:
    def __init__(
        self,
        db: Database,
        files: FileService,
        runner: LineRunner,
        admission: Admission,
        settings: BatchSettings,
        slots: int,
    ) -> None:
        self._db = db
        self._files = files
        self._runner = runner
        self._admission = admission
        self._settings = settings
        self._slots = settings.slots or slots
        self._idle_share = settings.idle_concurrency or self._slots
        self._running: dict[asyncio.Task[Outcome], None] = {}  # oldest first
        self._preempter: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # A batch stays in_progress (or cancelling) while held: claiming and letting go
        # only set and clear its worker.
        self._jobs = ClaimedJobs(
            db,
            BatchRow,
            "batch",
            running=RUNNING,
            claimable=lambda: BatchRow.status.in_(RUNNING) & BatchRow.worker.is_(None),
        )
        self.me = self._jobs.me

    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self) -> None:
        stale = timedelta(seconds=self._settings.stale_after_s)
        await poll_forever(self._jobs, self.execute, self._wake, self._settings.poll_s, stale)

    async def recover(self) -> None:
        """Batches whose worker stopped beating are let go, to be claimed again."""
        await self._jobs.recover(timedelta(seconds=self._settings.stale_after_s))

    async def release(self) -> None:
        """Let go of this worker's batches (shutting down): claimable again at once, from
        their last committed request, instead of after ``stale_after_s``."""
        await self._jobs.release()

    async def claim(self) -> str | None:
        return await self._jobs.claim()

    async def execute(self, batch_id: str) -> None:
        async with self._db.session() as s:
            row = await s.get(BatchRow, batch_id)
        if row is None:
            return
        try:
            lines = await input_lines(self._files, row, self._settings.max_lines)
            done = await done_lines(self._db, batch_id)
            pending = [line for line in lines if line.index not in done]
            why = await self._drive(row, pending) if row.status == "in_progress" else "cancelled"
        except CorralError as exc:  # its input file is gone
            log.warning("batch %s cannot run: %s", batch_id, exc.message)
            why = "failed"
        await finalize(self._db, self._files, row, why, self._settings.max_lines)
        log.info("batch %s ended: %s", batch_id, why)

    async def _drive(self, row: BatchRow, pending: list[Line]) -> str:
        """Run the pending requests behind interactive traffic until they are done, or the
        batch is cancelled, expires, or its budget runs out; returns which."""
        who, expires, stop = stored_principal(row.principal), aware(row.expires_at), list[str]()

        async def one(line: Line) -> None:
            background.set(True)  # this task's requests make way for interactive ones
            request_id = line_request_id(row.id, line.index)
            while True:
                await self._turn()
                if now() >= expires:  # past the window: left to the error file, not run
                    stop.append("expired")
                    return
                run = self._start(
                    self._runner.run(who, row.endpoint, line.body, row.scope, request_id)
                )
                try:
                    outcome = await run
                except asyncio.CancelledError:
                    if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                        raise
                    continue  # handed back to make way for interactive traffic
                except BudgetExhausted:
                    stop.append("budget")
                    return
                finally:
                    self._running.pop(run, None)
                await self._record(row.id, line, outcome)
                return

        tasks = [asyncio.create_task(one(line)) for line in pending]
        try:
            return await self._watch(row, tasks, stop)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self, row: BatchRow, tasks: list[asyncio.Task[None]], stop: list[str]) -> str:
        while True:
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if all(t.done() for t in tasks):
                return stop[0] if stop else "done"
            await asyncio.wait(tasks, timeout=HEARTBEAT_S, return_when=asyncio.FIRST_EXCEPTION)
            status = await self._beat(row.id)
            if stop:
                return stop[0]
            if status != "in_progress":
                return "cancelled"
            if now() >= aware(row.expires_at):
                return "expired"

    def _share(self) -> int:
        """How many batch requests may run now: a bounded share while interactive
        requests are in flight or were within ``quiet_s``, else the idle share."""
        admission = self._admission
        recent = time.monotonic() - admission.last_interactive < self._settings.quiet_s
        if recent or admission.interactive_in_flight > 0:
            return self._settings.concurrency
        return self._idle_share

    async def _turn(self) -> None:
        """Wait for capacity interactive requests leave free. Polled: the admission
        counter is on every request's hot path, and a waiting batch request looking every
        20 ms costs less than an event set on each request's end. Returns with no await
        after its check, so the caller's start counts before anyone else looks."""
        while (  # noqa: ASYNC110
            len(self._running) >= self._share() or self._admission.in_flight >= self._slots
        ):
            await asyncio.sleep(YIELD_S)

    def _start(self, call: Coroutine[Any, Any, Outcome]) -> asyncio.Task[Outcome]:
        run = asyncio.create_task(call)
        self._running[run] = None
        if self._preempter is None or self._preempter.done():
            self._preempter = asyncio.create_task(self._preempt())
        return run

    async def _preempt(self) -> None:
        """While batch requests run: hand back the newest past the share (interactive
        traffic arrived), within ``YIELD_S``."""
        while self._running:
            live = [run for run in self._running if not (run.done() or run.cancelling())]
            for run in reversed(live[self._share() :]):
                run.cancel()
            await asyncio.sleep(YIELD_S)

    async def _beat(self, batch_id: str) -> str:
        return await self._jobs.beat(batch_id)

    async def _record(self, batch_id: str, line: Line, outcome: Outcome) -> None:
        row = BatchLineRow(
            id=new_id("batch_req", "_"),
            batch_id=batch_id,
            line=line.index,
            custom_id=line.custom_id,
            ok=outcome.ok,
            status_code=outcome.status_code,
            request_id=outcome.request_id,
            body=outcome.body,
        )
        async with self._db.begin() as s:
            s.add(row)
            batch = await s.get(BatchRow, batch_id)
            if batch is not None:
                counts = dict(batch.request_counts)
                counts["completed" if outcome.ok else "failed"] += 1
                batch.request_counts = counts
