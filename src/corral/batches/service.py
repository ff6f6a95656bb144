"""/v1/batches: a batch is made from an uploaded file (every line checked by the
endpoint's own service before it starts), read, listed and cancelled; the worker runs it.
Batches belong to the project that made them; another project's key is told they do not
exist."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta

from sqlalchemy import select

from corral.accounts.keys import Principal
from corral.batches.lines import MAX_ERRORS, Line, parse_lines
from corral.batches.runner import LineRunner
from corral.batches.store import batch_object, finalize
from corral.core.clock import now
from corral.core.config import BatchSettings
from corral.core.errors import CorralError, InvalidRequestError, NotFoundError
from corral.core.ids import new_id
from corral.files import FileService, Owner
from corral.protocol.batches import ENDPOINTS, BatchCreate, BatchError, BatchList, BatchObject
from corral.storage.db import Database
from corral.storage.paging import page
from corral.storage.tables import BatchRow

WINDOW = timedelta(hours=24)


def scope_of(who: Principal) -> str:
    return who.project_id or "-"


def _missing(batch_id: str) -> NotFoundError:
    return NotFoundError(f"No batch found with id '{batch_id}'.", param="batch_id")


class BatchService:
    def __init__(
        self,
        db: Database,
        files: FileService,
        runner: LineRunner,
        settings: BatchSettings,
        wake: Callable[[], None],
    ) -> None:
        self._db = db
        self._files = files
        self._runner = runner
        self._settings = settings
        self._wake = wake

    async def create(self, who: Principal, req: BatchCreate) -> BatchObject:
        for name in req.unknown_fields():
            raise InvalidRequestError(f"Unrecognized request argument supplied: {name}", param=name)
        if req.endpoint not in ENDPOINTS:
            raise InvalidRequestError(
                f"`endpoint` must be one of {', '.join(ENDPOINTS)}.", param="endpoint"
            )
        lines, errors = await self._read(who, req)
        errors += await self._check(lines, req.endpoint, scope_of(who))
        errors = sorted(errors, key=lambda e: e.line or 0)[:MAX_ERRORS]
        moment = now()
        window = timedelta(seconds=self._settings.window_s) if self._settings.window_s else WINDOW
        row = BatchRow(
            id=new_id("batch", "_"),
            scope=scope_of(who),
            principal=asdict(who),
            status="failed" if errors else "in_progress",
            endpoint=req.endpoint,
            input_file_id=req.input_file_id,
            completion_window=req.completion_window,
            meta=req.metadata,
            errors=[e.model_dump() for e in errors] or None,
            request_counts={"total": 0 if errors else len(lines), "completed": 0, "failed": 0},
            times={"failed_at" if errors else "in_progress_at": int(moment.timestamp())},
            created_at=moment,
            expires_at=moment + window,
        )
        async with self._db.begin() as s:
            s.add(row)
        if not errors:
            self._wake()
        return batch_object(row)

    async def _read(self, who: Principal, req: BatchCreate) -> tuple[list[Line], list[BatchError]]:
        owner = Owner(who.org_id, who.project_id)
        found = await self._files.retrieve(owner, req.input_file_id)  # 404 for others'
        if found.purpose != "batch":
            raise InvalidRequestError(
                f"File {found.id} has purpose `{found.purpose}`; a batch needs `batch`.",
                param="input_file_id",
            )
        data = await asyncio.to_thread((await self._files.content(owner, found.id)).read_bytes)
        return parse_lines(data, req.endpoint, self._settings.max_lines)

    async def _check(self, lines: list[Line], endpoint: str, scope: str) -> list[BatchError]:
        """Each request as its endpoint's service would check it (model, fields, limits,
        context), so a batch that starts has no request refused for what it says."""
        errors: list[BatchError] = []
        for line in lines:
            try:
                await self._runner.prepare(endpoint, line.body, scope)
            except CorralError as exc:
                code = exc.code or "invalid_request"
                param = f"body.{exc.param}" if exc.param else None
                errors.append(
                    BatchError(code=code, message=exc.message, param=param, line=line.number)
                )
                if len(errors) >= MAX_ERRORS:
                    break
        return errors

    async def _row(self, scope: str, batch_id: str) -> BatchRow:
        async with self._db.session() as s:
            row = await s.get(BatchRow, batch_id)
        if row is None or row.scope != scope:
            raise _missing(batch_id)
        return row

    async def get(self, who: Principal, batch_id: str) -> BatchObject:
        return batch_object(await self._row(scope_of(who), batch_id))

    async def list(self, who: Principal, limit: int, after: str | None) -> BatchList:
        query = select(BatchRow).where(BatchRow.scope == scope_of(who))
        async with self._db.session() as s:
            missing = f"No batch found with id '{after}'."
            rows = await page(s, query, BatchRow, limit, after, "desc", missing)
        data = [batch_object(r) for r in rows[:limit]]
        return BatchList(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            has_more=len(rows) > limit,
        )

    async def cancel(self, who: Principal, batch_id: str) -> BatchObject:
        """``cancelling`` at once; the worker running it stops within a heartbeat and
        ends it ``cancelled`` with what finished. One no worker holds ends here."""
        row = await self._row(scope_of(who), batch_id)
        if row.status in ("in_progress", "validating"):
            async with self._db.begin() as s:
                held = await s.get(BatchRow, batch_id)
                assert held is not None
                held.status = "cancelling"
                held.times = {**(held.times or {}), "cancelling_at": int(now().timestamp())}
                worker = held.worker
            if worker is None:
                await finalize(self._db, self._files, row, "cancelled", self._settings.max_lines)
        return batch_object(await self._row(scope_of(who), batch_id))
