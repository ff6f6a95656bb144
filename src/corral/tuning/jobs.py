"""Fine-tuning jobs: create (validate the files), list, retrieve, cancel, events,
checkpoints; and the fine-tuned models the registry serves.

States: ``validating_files → queued → running → succeeded | failed | cancelled``, each
transition a committed update. Validation runs here, in the API process (it is bounded
by the file size limit and ``max_examples``); training runs in the worker process
(``corral.tuning.worker``), which claims queued jobs from the database.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from corral.catalog.adapters import FineTunedModel
from corral.catalog.registry import ModelRegistry
from corral.core.clock import now
from corral.core.config import FineTuningSettings
from corral.core.errors import ConflictError, InvalidRequestError, ModelNotFoundError, NotFoundError
from corral.core.ids import new_id
from corral.files import FileService, Owner
from corral.protocol.fine_tuning import (
    TERMINAL,
    CheckpointMetrics,
    FineTuningJob,
    JobCheckpoint,
    JobCheckpointList,
    JobCreateRequest,
    JobError,
    JobEvent,
    JobEventList,
    JobHyperparameters,
    JobList,
    JobMethod,
    ModelDeleted,
)
from corral.storage.db import Database
from corral.storage.paging import page
from corral.storage.tables import FineTuningCheckpoint, FineTuningEvent, StoredFile
from corral.storage.tables import FineTuningJob as JobRow
from corral.tuning.data import DataError, example_lines, read_examples

log = logging.getLogger(__name__)

AUTO_BATCH = 4
AUTO_TARGET_STEPS = 60


def _ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def job_object(row: JobRow) -> FineTuningJob:
    hp = JobHyperparameters(**row.hyperparameters)
    return FineTuningJob(
        id=row.id,
        created_at=int(row.created_at.timestamp()),
        error=JobError(**row.error) if row.error else None,
        fine_tuned_model=row.fine_tuned_model,
        finished_at=_ts(row.finished_at),
        hyperparameters=hp,
        method=JobMethod(supervised={"hyperparameters": hp}),
        model=row.model,
        organization_id=row.org_id or "org-default",
        seed=row.seed,
        status=row.status,
        trained_tokens=row.trained_tokens,
        training_file=row.training_file,
        validation_file=row.validation_file,
        estimated_finish=_ts(row.estimated_finish),
        suffix=row.suffix,
    )


def auto_hyperparameters(requested: dict[str, Any], n_examples: int) -> dict[str, Any]:
    batch = requested["batch_size"]
    batch = min(AUTO_BATCH, n_examples) if batch == "auto" else int(batch)
    epochs = requested["n_epochs"]
    if epochs == "auto":
        epochs = max(1, min(10, math.ceil(AUTO_TARGET_STEPS / math.ceil(n_examples / batch))))
    lr = requested["learning_rate_multiplier"]
    return {
        "n_epochs": int(epochs),
        "batch_size": batch,
        "learning_rate_multiplier": 1.0 if lr == "auto" else float(lr),
    }


def _hyper_in(req: JobCreateRequest) -> dict[str, Any]:
    if req.method is not None and req.hyperparameters is not None:
        raise InvalidRequestError(
            "Give `hyperparameters` or `method`, not both.", param="hyperparameters"
        )
    hp = req.method.supervised.hyperparameters if req.method else req.hyperparameters
    data: dict[str, Any] = hp.model_dump() if hp is not None else {}
    data = {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"} | data
    for name, low, high in (("n_epochs", 1, 50), ("batch_size", 1, 64)):
        value = data[name]
        if value != "auto" and not low <= int(value) <= high:
            raise InvalidRequestError(
                f"`{name}` must be between {low} and {high}.", param=f"hyperparameters.{name}"
            )
    lr = data["learning_rate_multiplier"]
    if lr != "auto" and not 0 < float(lr) <= 10:
        raise InvalidRequestError(
            "`learning_rate_multiplier` must be in (0, 10].",
            param="hyperparameters.learning_rate_multiplier",
        )
    return data


def _owned(query: Any, owner: Owner) -> Any:
    return query.where(
        JobRow.project_id.is_(None)
        if owner.project_id is None
        else JobRow.project_id == owner.project_id
    )


def fine_tuned_name(base: str, org: str | None, suffix: str | None, job_id: str) -> str:
    return f"ft:{base}:{org or 'org-default'}:{suffix or ''}:{job_id}"


class FineTuningService:
    def __init__(
        self,
        db: Database,
        files: FileService,
        registry: ModelRegistry,
        settings: FineTuningSettings,
    ) -> None:
        self._db = db
        self._files = files
        self._registry = registry
        self._settings = settings
        self._tasks: set[asyncio.Task[None]] = set()

    # -- jobs ----------------------------------------------------------------------------

    async def _file(self, owner: Owner, file_id: str, param: str) -> StoredFile:
        async with self._db.session() as s:
            row = await s.get(StoredFile, file_id)
        if row is None or row.project_id != owner.project_id:
            raise InvalidRequestError(f"No such File object: {file_id}", param=param)
        if row.purpose != "fine-tune":
            raise InvalidRequestError(
                f"File {file_id} has purpose `{row.purpose}`; fine-tuning needs `fine-tune`.",
                param=param,
            )
        return row

    async def create(self, owner: Owner, req: JobCreateRequest) -> FineTuningJob:
        if req.model.startswith("ft:"):
            raise InvalidRequestError(
                "Fine-tuning a fine-tuned model is not supported here; use its base.",
                param="model",
            )
        served = self._registry.get(req.model)
        spec = served.spec
        if not (spec.path.is_file() and spec.path.suffix == ".gguf"):
            raise InvalidRequestError(
                f"The model `{spec.id}` cannot be fine-tuned on this server "
                "(its weights are not a local GGUF file).",
                param="model",
            )
        hyper = _hyper_in(req)
        await self._file(owner, req.training_file, "training_file")
        if req.validation_file is not None:
            await self._file(owner, req.validation_file, "validation_file")
        job_id = new_id("ftjob")
        row = JobRow(
            id=job_id,
            org_id=owner.org_id,
            project_id=owner.project_id,
            model=spec.id,
            base_path=str(spec.path),
            training_file=req.training_file,
            validation_file=req.validation_file,
            suffix=req.suffix,
            seed=req.seed if req.seed is not None else secrets.randbelow(2**31),
            hyperparameters=hyper,
            status="validating_files",
            model_deleted=False,
            attempts=0,
            created_at=now(),
        )
        async with self._db.begin() as s:
            s.add(row)
            await s.flush()  # the job row before its events (foreign key)
            s.add(_event(job_id, f"Created fine-tuning job: {job_id}"))
            s.add(_event(job_id, f"Validating training file: {req.training_file}"))
        self._spawn(self.validate(job_id))
        return job_object(row)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def validate(self, job_id: str) -> None:
        """validating_files → queued, or → failed with the first bad line named."""
        async with self._db.session() as s:
            row = await s.get(JobRow, job_id)
        if row is None or row.status != "validating_files":
            return
        try:
            n_train = await self._check_file(row.training_file, row.model, "training_file")
            if row.validation_file is not None:
                await self._check_file(row.validation_file, row.model, "validation_file")
            hyper = auto_hyperparameters(row.hyperparameters, n_train)
            steps = math.ceil(n_train / hyper["batch_size"]) * hyper["n_epochs"]
            if steps > self._settings.max_steps:
                raise _Invalid(
                    "hyperparameters",
                    f"{steps} training steps; this server allows {self._settings.max_steps}.",
                )
        except _Invalid as exc:
            await self._fail_validation(job_id, exc.param, exc.message)
            return
        except Exception as exc:  # an engine or storage failure: the job fails, says why
            log.exception("validating %s", job_id)
            await self._fail_validation(job_id, None, f"Validation failed: {exc}")
            return
        async with self._db.begin() as s:
            result = await s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == "validating_files")
                .values(status="queued", hyperparameters=hyper)
            )
            if result.rowcount:
                s.add(_event(job_id, f"Files validated: {n_train} training examples"))
                s.add(_event(job_id, "Job enqueued"))

    async def _check_file(self, file_id: str, model: str, param: str) -> int:
        path = self._files.path_of(file_id)
        label = "Training" if param == "training_file" else "Validation"
        try:
            examples = await asyncio.to_thread(read_examples, path, self._settings.max_examples)
        except DataError as exc:
            raise _Invalid(param, f"{label} file {file_id} is invalid: {exc}") from None
        except OSError:
            raise _Invalid(param, f"{label} file {file_id} could not be read.") from None
        lines = await asyncio.to_thread(example_lines, path)
        engine = self._registry.get(model).engine
        limit = min(self._settings.max_example_tokens, engine.info.context_window)
        for line, messages in zip(lines, examples, strict=False):
            tokens = await engine.count_chat_tokens({"messages": messages})
            if tokens > limit:
                raise _Invalid(
                    param,
                    f"{label} file {file_id} is invalid: line {line}: the example is "
                    f"{tokens} tokens, more than the limit of {limit}",
                )
        return len(examples)

    async def _fail_validation(self, job_id: str, param: str | None, message: str) -> None:
        error = {"code": "invalid_file", "message": message, "param": param}
        async with self._db.begin() as s:
            await s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == "validating_files")
                .values(status="failed", error=error, finished_at=now())
            )
            s.add(_event(job_id, message, level="error"))

    async def resume_validation(self) -> None:
        """At start: jobs whose validation was cut short by a restart are validated again."""
        async with self._db.session() as s:
            ids = list(
                await s.scalars(select(JobRow.id).where(JobRow.status == "validating_files"))
            )
        for job_id in ids:
            self._spawn(self.validate(job_id))

    async def _row(self, owner: Owner, job_id: str) -> JobRow:
        async with self._db.session() as s:
            row = await s.get(JobRow, job_id)
        if row is None or row.project_id != owner.project_id:
            raise NotFoundError(f"No such fine-tuning job: {job_id}", param="fine_tuning_job_id")
        return row

    async def retrieve(self, owner: Owner, job_id: str) -> FineTuningJob:
        row = await self._row(owner, job_id)
        if row.status == "succeeded":
            await self.sync_models()  # a client that saw it succeed can call it at once
        return job_object(row)

    async def list(self, owner: Owner, limit: int, after: str | None) -> JobList:
        async with self._db.session() as s:
            missing = f"No such fine-tuning job: {after}"
            rows = await page(
                s, _owned(select(JobRow), owner), JobRow, limit, after, "desc", missing
            )
        return JobList(data=[job_object(r) for r in rows[:limit]], has_more=len(rows) > limit)

    async def cancel(self, owner: Owner, job_id: str) -> FineTuningJob:
        row = await self._row(owner, job_id)
        if row.status in TERMINAL:
            raise ConflictError(
                f"The job {job_id} has already {row.status}; it cannot be cancelled.",
                param="fine_tuning_job_id",
            )
        async with self._db.begin() as s:
            result = await s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status.not_in(TERMINAL))
                .values(status="cancelled", finished_at=now())
            )
            if result.rowcount:
                s.add(_event(job_id, "Job cancelled"))
        return job_object(await self._row(owner, job_id))

    async def events(
        self, owner: Owner, job_id: str, limit: int, after: str | None
    ) -> JobEventList:
        await self._row(owner, job_id)
        if not 1 <= limit <= 1000:
            raise InvalidRequestError("limit must be between 1 and 1000.", param="limit")
        query = select(FineTuningEvent).where(FineTuningEvent.job_id == job_id)
        if after is not None:
            if not after.startswith("ftevent-") or not after[8:].isdigit():
                raise InvalidRequestError(f"No such event: {after}", param="after")
            query = query.where(FineTuningEvent.id < int(after[8:]))
        async with self._db.session() as s:
            rows = list(await s.scalars(query.order_by(FineTuningEvent.id.desc()).limit(limit + 1)))
        return JobEventList(
            data=[
                JobEvent(
                    id=f"ftevent-{r.id}",
                    created_at=int(r.created_at.timestamp()),
                    level=r.level,
                    message=r.message,
                    type=r.type,
                    data=r.data,
                )
                for r in rows[:limit]
            ],
            has_more=len(rows) > limit,
        )

    async def checkpoints(self, owner: Owner, job_id: str, limit: int) -> JobCheckpointList:
        job = await self._row(owner, job_id)
        if not 1 <= limit <= 1000:
            raise InvalidRequestError("limit must be between 1 and 1000.", param="limit")
        async with self._db.session() as s:
            rows = list(
                await s.scalars(
                    select(FineTuningCheckpoint)
                    .where(FineTuningCheckpoint.job_id == job_id)
                    .order_by(FineTuningCheckpoint.step.desc())
                    .limit(limit)
                )
            )
        name = fine_tuned_name(job.model, job.org_id, job.suffix, job.id)
        data = [
            JobCheckpoint(
                id=r.id,
                created_at=int(r.created_at.timestamp()),
                fine_tuned_model_checkpoint=f"{name}:ckpt-step-{r.step}",
                fine_tuning_job_id=job_id,
                metrics=CheckpointMetrics(**r.metrics),
                step_number=r.step,
            )
            for r in rows
        ]
        return JobCheckpointList(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
        )

    # -- fine-tuned models ---------------------------------------------------------------

    async def sync_models(self) -> None:
        """Tell the registry which fine-tunes to serve (the worker writes them to the DB)."""
        async with self._db.session() as s:
            rows = list(
                await s.scalars(
                    select(JobRow).where(
                        JobRow.status == "succeeded",
                        JobRow.model_deleted.is_(False),
                        JobRow.fine_tuned_model.is_not(None),
                    )
                )
            )
        await self._registry.set_fine_tuned(
            [
                FineTunedModel(
                    id=str(r.fine_tuned_model),
                    base=r.model,
                    adapter=Path(str(r.adapter_path)),
                    owned_by=r.org_id or "org-default",
                    created=int((r.finished_at or r.created_at).timestamp()),
                    project_id=r.project_id,
                )
                for r in rows
            ]
        )

    async def sync_forever(self, interval: float = 2.0) -> None:
        while True:
            try:
                await self.sync_models()
            except Exception:  # retried next interval
                log.exception("syncing fine-tuned models")
            await asyncio.sleep(interval)

    async def delete_model(self, owner: Owner, model: str) -> ModelDeleted:
        async with self._db.session() as s:
            row = (
                await s.scalars(
                    _owned(select(JobRow), owner).where(
                        JobRow.fine_tuned_model == model, JobRow.model_deleted.is_(False)
                    )
                )
            ).first()
        if row is None:
            raise ModelNotFoundError(
                f"The model `{model}` does not exist or you do not have access to it.",
                param="model",
            )
        async with self._db.begin() as s:
            await s.execute(update(JobRow).where(JobRow.id == row.id).values(model_deleted=True))
        await self.sync_models()
        return ModelDeleted(id=model)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()


class _Invalid(Exception):
    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


def _event(
    job_id: str,
    message: str,
    *,
    level: str = "info",
    kind: str = "message",
    data: dict[str, Any] | None = None,
) -> FineTuningEvent:
    return FineTuningEvent(
        job_id=job_id, created_at=now(), level=level, type=kind, message=message, data=data
    )
