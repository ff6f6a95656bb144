"""Batches in the database: the object a client sees, its lines, and the end of a batch
(its output files written, its final status set), shared by the service (a cancel with
no worker on it) and the worker."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select, update

from corral.batches.files import output_lines
from corral.batches.lines import Line, parse_lines
from corral.core.clock import aware, now
from corral.core.errors import CorralError
from corral.files import FileService, Owner
from corral.protocol.batches import TIMES, BatchError, BatchErrors, BatchObject, RequestCounts
from corral.storage.db import Database
from corral.storage.tables import BatchLineRow, BatchRow

# What a batch ends as, by why it stopped running requests.
FINAL = {
    "done": "completed",
    "expired": "expired",
    "cancelled": "cancelled",
    "budget": "completed",  # what ran is there; the rest failed for want of budget
    "failed": "failed",
}


def batch_object(row: BatchRow) -> BatchObject:
    times = {k: v for k, v in (row.times or {}).items() if k in TIMES}
    errors = (
        BatchErrors(data=[BatchError.model_validate(e) for e in row.errors]) if row.errors else None
    )
    return BatchObject(
        id=row.id,
        endpoint=row.endpoint,
        errors=errors,
        input_file_id=row.input_file_id,
        completion_window=row.completion_window,
        status=row.status,
        output_file_id=row.output_file_id,
        error_file_id=row.error_file_id,
        created_at=int(aware(row.created_at).timestamp()),
        expires_at=int(aware(row.expires_at).timestamp()),
        request_counts=RequestCounts.model_validate(row.request_counts),
        metadata=row.meta,
        **times,
    )


def owner_of(row: BatchRow) -> Owner:
    return Owner(row.principal.get("org_id"), row.principal.get("project_id"))


async def input_lines(files: FileService, row: BatchRow, max_lines: int) -> list[Line]:
    """The batch's requests, read again from its input file (checked when it was made)."""
    path = await files.content(owner_of(row), row.input_file_id)
    data = await asyncio.to_thread(path.read_bytes)
    return parse_lines(data, row.endpoint, max_lines)[0]


async def done_lines(db: Database, batch_id: str) -> dict[int, BatchLineRow]:
    async with db.session() as s:
        rows = await s.scalars(select(BatchLineRow).where(BatchLineRow.batch_id == batch_id))
        return {r.line: r for r in rows}


async def counts(db: Database, batch_id: str, total: int) -> dict[str, int]:
    done = await done_lines(db, batch_id)
    ok = sum(1 for r in done.values() if r.ok)
    return {"total": total, "completed": ok, "failed": len(done) - ok}


async def finalize(
    db: Database, files: FileService, row: BatchRow, why: str, max_lines: int
) -> None:
    """Write the output and error files from the finished lines and end the batch:
    ``why``: ``done``, ``expired``, ``cancelled``, ``budget`` (its project's budget ran
    out) or ``failed`` (its input file is gone)."""
    await _set(db, row.id, {"status": "finalizing"}, "finalizing_at")
    try:
        lines = await input_lines(files, row, max_lines)
    except CorralError:  # the input file was deleted: nothing left to write out
        lines = []
    out, err, completed, failed = output_lines(lines, await done_lines(db, row.id), why)
    owner, values = owner_of(row), dict[str, Any]()
    if out:
        made = await files.create(owner, f"{row.id}_output.jsonl", "batch_output", out)
        values["output_file_id"] = made.id
    if err:
        made = await files.create(owner, f"{row.id}_error.jsonl", "batch_output", err)
        values["error_file_id"] = made.id
    status = FINAL[why]
    values.update(
        status=status,
        request_counts={"total": len(lines), "completed": completed, "failed": failed},
        worker=None,
    )
    await _set(db, row.id, values, f"{status}_at")


async def _set(db: Database, batch_id: str, values: dict[str, Any], moment: str) -> None:
    async with db.begin() as s:
        row = await s.get(BatchRow, batch_id)
        if row is None:
            return
        times = dict(row.times or {})
        times[moment] = int(now().timestamp())
        await s.execute(
            update(BatchRow).where(BatchRow.id == batch_id).values(times=times, **values)
        )
