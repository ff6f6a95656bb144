"""The eval worker: a task in each API process that claims queued runs from the database
and executes them, several items at a time, against the models corral serves.

A run is claimed with a conditional update, so API replicas sharing a database never
run it twice. Every finished item is written with the run's counts in one transaction
(the run's progress is its ``result_counts``). A heartbeat marks a run as alive; one
whose worker stopped beating is queued again and resumes after its last written item.
Cancelling is a status change the worker notices within a second.

Model calls are metered like API requests (limits, budget, usage rows with endpoint
``evals``) under the principal that created the run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import anyio
from sqlalchemy import select, update

from corral.accounts.keys import Principal, stored_principal
from corral.accounts.metering import Charge, Meter
from corral.catalog.registry import ModelRegistry
from corral.core.clock import now
from corral.core.config import EvalSettings, Settings
from corral.core.errors import CorralError, OverloadedError, RateLimitError
from corral.core.ids import new_id
from corral.evals.definitions import parse_definition
from corral.evals.runner import ItemOutcome, RunPlan, evaluate
from corral.evals.sandbox import Limits, PythonSandbox
from corral.inference.chat import ChatService
from corral.inference.embeddings import EmbeddingService
from corral.protocol.chat import ChatCompletion, ChatCompletionRequest
from corral.protocol.embeddings import EmbeddingList, EmbeddingRequest
from corral.protocol.evals import ItemReference, SamplingParams, TemplateMessages
from corral.storage.claims import ClaimedJobs, poll_forever
from corral.storage.db import Database
from corral.storage.tables import NANO, EvalOutputItemRow, EvalRow, EvalRunRow

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
STALE_AFTER = timedelta(seconds=60)
RETRIES = 30  # waits on rate limits and a full server before an item errors
M = TypeVar("M", ChatCompletion, EmbeddingList)
R = TypeVar("R")


class Tally:
    """Per-model usage of one run, as the run object shows it."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.models: dict[str, dict[str, Any]] = {r["model_name"]: dict(r) for r in rows}

    def add(self, model: str, usage: dict[str, Any], cost_nano: int) -> None:
        entry = self.models.setdefault(
            model,
            {
                "model_name": model,
                "invocation_count": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "total_tokens": 0,
                "cached_tokens": 0,
                "cost_usd": 0.0,
            },
        )
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        entry["invocation_count"] += 1
        entry["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
        entry["completion_tokens"] += int(usage.get("completion_tokens") or 0)
        entry["total_tokens"] += int(usage.get("total_tokens") or 0)
        entry["cached_tokens"] += int(cached)
        entry["cost_usd"] = round(entry["cost_usd"] + cost_nano / NANO, 9)

    def rows(self) -> list[dict[str, Any]]:
        return list(self.models.values())


async def _retrying(call: Callable[[], Awaitable[R]]) -> R:
    """Wait out rate limits and a full server instead of failing the item."""
    for attempt in range(RETRIES):
        try:
            return await call()
        except (RateLimitError, OverloadedError) as exc:
            if attempt == RETRIES - 1:
                raise
            wait = float(exc.headers.get("retry-after", "1") or 1)
            await asyncio.sleep(min(max(wait, 0.2), 10.0))
    raise AssertionError("unreachable")


class ModelCalls:
    """Chat and embedding calls for eval runs, through the same meter as API requests."""

    def __init__(
        self,
        registry: ModelRegistry,
        chat: ChatService,
        embeddings: EmbeddingService,
        meter: Meter,
        embedding_model: str,
    ) -> None:
        self._registry = registry
        self._chat = chat
        self._embeddings = embeddings
        self._meter = meter
        self._embedding_model = embedding_model

    def serves(self, model: str) -> bool:
        return self._registry.serves(model)

    async def chat(
        self, who: Principal, tally: Tally, model: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        req = ChatCompletionRequest.model_validate({"model": model, **body})
        prepared = await self._chat.prepare(req)

        async def complete() -> ChatCompletion:
            result = await self._chat.run(prepared)
            assert isinstance(result, ChatCompletion)  # never a stream: req.stream is unset
            return result

        done = await self._metered(who, tally, prepared.charge, complete)
        return done.model_dump()

    async def embed(self, who: Principal, tally: Tally, texts: list[str]) -> list[list[float]]:
        request = EmbeddingRequest(model=self._embedding_model, input=texts)
        prepared = await self._embeddings.prepare(request)
        done = await self._metered(
            who, tally, prepared.charge, lambda: self._embeddings.run(prepared)
        )
        vectors: list[list[float]] = []
        for d in done.data:
            assert isinstance(d.embedding, list)  # the float encoding was asked for
            vectors.append(d.embedding)
        return vectors

    async def _metered(
        self, who: Principal, tally: Tally, charge: Charge, call: Callable[[], Awaitable[M]]
    ) -> M:
        """Admit (waiting out limits), call, settle in line, and count the cost in the run."""
        ticket = await _retrying(lambda: self._meter.admit(who, charge))
        try:
            result = await _retrying(call)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._meter.settle(ticket, None, "error")
            raise
        usage = result.usage.model_dump()
        tally.add(charge.spec.id, usage, await self._meter.settle(ticket, usage, "ok"))
        return result


def _plan(run: EvalRunRow, eval_row: EvalRow, model_exists: Callable[[str], bool]) -> RunPlan:
    definition = parse_definition(
        eval_row.data_source_config, eval_row.testing_criteria, model_exists
    )
    source = run.data_source
    if source.get("type") != "completions":
        return RunPlan(definition, None)
    messages = source["input_messages"]
    parsed: TemplateMessages | ItemReference = (
        TemplateMessages.model_validate(messages)
        if messages.get("type") == "template"
        else ItemReference.model_validate(messages)
    )
    sampling = SamplingParams.model_validate(source.get("sampling_params") or {})
    return RunPlan(definition, source["model"], parsed, sampling.model_dump(exclude_none=True))


class RunProgress:
    """The counts of one run, updated as items finish and written with each item."""

    def __init__(self, run: EvalRunRow) -> None:
        self.counts = dict(run.result_counts)
        self.criteria = {c["testing_criteria"]: dict(c) for c in run.per_criteria}
        self.tally = Tally(run.per_model_usage)

    def add(self, outcome: ItemOutcome) -> None:
        key = {"pass": "passed", "fail": "failed", "error": "errored"}[outcome.status]
        self.counts[key] += 1
        for result in outcome.results:
            entry = self.criteria.get(result.name)
            if entry is not None and result.error is None:
                entry["passed" if result.passed else "failed"] += 1

    def values(self) -> dict[str, Any]:
        return {
            "result_counts": dict(self.counts),
            "per_criteria": list(self.criteria.values()),
            "per_model_usage": self.tally.rows(),
        }


class EvalWorker:
    def __init__(
        self, db: Database, calls: ModelCalls, settings: EvalSettings, sandbox: PythonSandbox
    ) -> None:
        self._db = db
        self._calls = calls
        self._settings = settings
        self._sandbox = sandbox
        self._wake = asyncio.Event()
        # A run is claimed from the queue and goes back to it when let go.
        self._jobs = ClaimedJobs(
            db,
            EvalRunRow,
            "eval run",
            running=("in_progress",),
            claimable=lambda: EvalRunRow.status == "queued",
            on_claim={"status": "in_progress"},
            on_release={"status": "queued"},
        )
        self.me = self._jobs.me

    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self) -> None:
        await poll_forever(self._jobs, self.execute, self._wake, self._settings.poll_s, STALE_AFTER)

    async def recover(self) -> None:
        """Runs whose worker stopped beating go back to the queue."""
        await self._jobs.recover(STALE_AFTER)

    async def release(self) -> None:
        """Put this worker's runs back in the queue (shutting down): another replica or
        the next start takes them up at once, instead of after ``STALE_AFTER``."""
        await self._jobs.release()

    async def claim(self) -> str | None:
        return await self._jobs.claim()

    async def _load(self, run_id: str) -> tuple[EvalRunRow, EvalRow, set[int]]:
        async with self._db.session() as s:
            run = await s.get(EvalRunRow, run_id)
            if run is None:
                raise LookupError(run_id)
            eval_row = await s.get(EvalRow, run.eval_id)
            done = set(
                await s.scalars(
                    select(EvalOutputItemRow.datasource_item_id).where(
                        EvalOutputItemRow.run_id == run_id
                    )
                )
            )
        if eval_row is None:
            raise LookupError(run.eval_id)
        return run, eval_row, done

    async def execute(self, run_id: str) -> None:
        try:
            run, eval_row, done = await self._load(run_id)
            plan = _plan(run, eval_row, self._calls.serves)
        except (LookupError, CorralError) as exc:
            await self._finish(run_id, "failed", {"code": "invalid_run", "message": str(exc)})
            return
        progress = RunProgress(run)
        who = stored_principal(run.principal)
        lock = asyncio.Lock()

        async def chat(model: str, body: dict[str, Any]) -> dict[str, Any]:
            return await self._calls.chat(who, progress.tally, model, body)

        async def embed(texts: list[str]) -> list[list[float]]:
            return await self._calls.embed(who, progress.tally, texts)

        async def one(index: int, row: dict[str, Any]) -> None:
            outcome = await evaluate(
                plan, row["item"], row.get("sample"), chat, embed, self._sandbox.grade
            )
            async with lock:
                progress.add(outcome)
                await self._record(run, index, row, outcome, progress)

        pending = [(i, r) for i, r in enumerate(run.items) if i not in done]
        try:
            status = await self._drive(run_id, pending, one)
        except Exception as exc:  # a broken run ends failed, never stuck in progress
            log.exception("eval run %s failed", run_id)
            await self._finish(run_id, "failed", {"code": "run_failed", "message": str(exc)})
            return
        if status == "in_progress":
            await self._finish(run_id, "completed", None)
        log.info("eval run %s: %s %s", run_id, status, progress.counts)

    async def _drive(
        self,
        run_id: str,
        pending: list[tuple[int, dict[str, Any]]],
        one: Callable[[int, dict[str, Any]], Awaitable[None]],
    ) -> str:
        """Run the items, ``concurrency`` at a time, until done or cancelled."""
        gate = asyncio.Semaphore(self._settings.concurrency)

        async def gated(index: int, row: dict[str, Any]) -> None:
            async with gate:
                await one(index, row)

        tasks = [asyncio.create_task(gated(i, r)) for i, r in pending]
        status = "in_progress"
        try:
            while not all(t.done() for t in tasks):
                await asyncio.wait(tasks, timeout=HEARTBEAT_S)
                status = await self._beat(run_id)
                if status != "in_progress":
                    break
            for task in tasks:
                failure = task.exception() if task.done() else None
                if failure is not None:
                    raise failure
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return status

    async def _beat(self, run_id: str) -> str:
        """Heartbeat; returns the run's status (cancelled or deleted runs stop)."""
        return await self._jobs.beat(run_id)

    async def _record(
        self,
        run: EvalRunRow,
        index: int,
        row: dict[str, Any],
        outcome: ItemOutcome,
        progress: RunProgress,
    ) -> None:
        item = EvalOutputItemRow(
            id=new_id("outputitem"),
            run_id=run.id,
            eval_id=run.eval_id,
            datasource_item_id=index,
            status=outcome.status,
            datasource_item=row["item"],
            results=[r.model_dump(exclude_none=True) for r in outcome.results],
            sample=outcome.sample,
            created_at=now(),
        )
        async with self._db.begin() as s:
            s.add(item)
            await s.execute(
                update(EvalRunRow).where(EvalRunRow.id == run.id).values(**progress.values())
            )

    async def _finish(self, run_id: str, status: str, error: dict[str, Any] | None) -> None:
        async with self._db.begin() as s:
            await s.execute(
                update(EvalRunRow)
                .where(EvalRunRow.id == run_id, EvalRunRow.status.in_(("queued", "in_progress")))
                .values(status=status, error=error, finished_at=now())
            )


def embedding_model(settings: Settings) -> str:
    return settings.evals.embedding_model or settings.model


def python_sandbox(settings: Settings) -> PythonSandbox:
    e = settings.evals
    return PythonSandbox(Limits(e.python_cpu_s, e.python_memory_mib, e.python_timeout_s))
