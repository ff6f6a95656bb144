"""Evals: definitions, runs and their output items (/v1/evals).

Everything a run needs is checked when it is created (the definition, the data against
the item schema, the model and the caller's access to it, the sampling parameters), so
a queued run fails only for reasons that arise while it runs. Runs are executed by the
``EvalWorker`` (services.eval_worker), which any API process sharing the database runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any

import jsonschema
import orjson
from pydantic import ValidationError
from sqlalchemy import delete, select, update

from corral.accounts.accounting import check_access
from corral.accounts.keys import Principal
from corral.catalog.registry import ModelRegistry
from corral.core.clock import now
from corral.core.config import EvalSettings
from corral.core.errors import ConflictError, CorralError, InvalidRequestError, NotFoundError
from corral.core.field_errors import invalid_field, optional_string, strictly
from corral.core.ids import new_id
from corral.evals.definitions import (
    EvalDefinition,
    check_template,
    parse_definition,
)
from corral.evals.sandbox import PythonSandbox
from corral.evals.templates import TemplateError, parse_path
from corral.files import FileService, Owner
from corral.protocol.chat import ChatCompletionRequest
from corral.protocol.evals import (
    DATA_SOURCES,
    RUN_TERMINAL,
    CompletionsDataSource,
    CriterionResult,
    DataSource,
    EvalCreateRequest,
    EvalDeleted,
    EvalList,
    EvalObject,
    EvalRun,
    EvalRunList,
    EvalUpdateRequest,
    FileContentSource,
    ModelUsage,
    OutputItem,
    OutputItemList,
    ResultCounts,
    RunCreateRequest,
    RunDeleted,
    RunError,
    SourceRow,
    TemplateMessages,
)
from corral.storage.db import Database
from corral.storage.paging import check_page, page
from corral.storage.tables import EvalOutputItemRow, EvalRow, EvalRunRow


def _ts(value: datetime) -> int:
    return int(value.timestamp())


def eval_object(row: EvalRow) -> EvalObject:
    config = dict(row.data_source_config)
    # OpenAI returns the item schema as ``schema`` (wrapped with the sample when included).
    config["schema"] = config.get("item_schema")
    return EvalObject(
        id=row.id,
        name=row.name,
        created_at=_ts(row.created_at),
        data_source_config=config,
        testing_criteria=row.testing_criteria,
        metadata=row.meta,
    )


def run_object(row: EvalRunRow) -> EvalRun:
    return EvalRun(
        id=row.id,
        eval_id=row.eval_id,
        name=row.name,
        model=row.model,
        status=row.status,
        created_at=_ts(row.created_at),
        data_source=row.data_source,
        error=RunError(**row.error) if row.error else None,
        metadata=row.meta,
        report_url=f"/v1/evals/{row.eval_id}/runs/{row.id}",
        result_counts=ResultCounts(**row.result_counts),
        per_testing_criteria_results=[CriterionResult(**c) for c in row.per_criteria],
        per_model_usage=[ModelUsage(**u) for u in row.per_model_usage],
    )


def item_object(row: EvalOutputItemRow) -> OutputItem:
    return OutputItem(
        id=row.id,
        run_id=row.run_id,
        eval_id=row.eval_id,
        created_at=_ts(row.created_at),
        status=row.status,
        datasource_item_id=row.datasource_item_id,
        datasource_item=row.datasource_item,
        results=row.results,
        sample=row.sample,
    )


def _listing(data: list[Any], limit: int) -> dict[str, Any]:
    """A list page's fields from up to ``limit + 1`` objects (the extra says there is more)."""
    shown = data[:limit]
    return {
        "data": shown,
        "first_id": shown[0].id if shown else None,
        "last_id": shown[-1].id if shown else None,
        "has_more": len(data) > limit,
    }


def _owned(query: Any, column: Any, owner: Owner) -> Any:
    return query.where(column.is_(None) if owner.project_id is None else column == owner.project_id)


def _sample_needed(definition: EvalDefinition) -> bool:
    return definition.config.include_sample_schema


class EvalService:
    def __init__(
        self,
        db: Database,
        files: FileService,
        registry: ModelRegistry,
        settings: EvalSettings,
        sandbox: PythonSandbox,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._files = files
        self._registry = registry
        self._settings = settings
        self._sandbox = sandbox
        self._wake = wake

    # -- evals ---------------------------------------------------------------------------

    async def create(self, owner: Owner, req: EvalCreateRequest) -> EvalObject:
        python = any(c.get("type") == "python" for c in req.testing_criteria)
        definition = parse_definition(
            req.data_source_config,
            req.testing_criteria,
            self._registry.serves,
            await self._sandbox.unavailable() if python else None,
        )
        row = EvalRow(
            id=new_id("eval"),
            org_id=owner.org_id,
            project_id=owner.project_id,
            name=req.name or "eval",
            data_source_config=definition.config.model_dump(),
            testing_criteria=[g.model_dump(exclude_none=True) for g in definition.graders],
            meta=req.metadata,
            created_at=now(),
        )
        async with self._db.begin() as s:
            s.add(row)
        return eval_object(row)

    async def _eval(self, owner: Owner, eval_id: str) -> EvalRow:
        async with self._db.session() as s:
            row: EvalRow | None = await s.scalar(
                _owned(select(EvalRow).where(EvalRow.id == eval_id), EvalRow.project_id, owner)
            )
        if row is None:
            raise NotFoundError(f"No eval with id `{eval_id}`.", param="eval_id")
        return row

    async def retrieve(self, owner: Owner, eval_id: str) -> EvalObject:
        return eval_object(await self._eval(owner, eval_id))

    async def update(self, owner: Owner, eval_id: str, req: EvalUpdateRequest) -> EvalObject:
        row = await self._eval(owner, eval_id)
        values: dict[str, Any] = {}
        if req.name is not None:
            values["name"] = req.name
        if req.metadata is not None:
            values["meta"] = req.metadata
        if values:
            async with self._db.begin() as s:
                await s.execute(update(EvalRow).where(EvalRow.id == row.id).values(**values))
        return await self.retrieve(owner, eval_id)

    async def list_evals(self, owner: Owner, limit: int, after: str | None, order: str) -> EvalList:
        query = _owned(select(EvalRow), EvalRow.project_id, owner)
        async with self._db.session() as s:
            rows = await page(s, query, EvalRow, limit, after, order, f"No eval `{after}`.")
        return EvalList(**_listing([eval_object(r) for r in rows], limit))

    async def delete(self, owner: Owner, eval_id: str) -> EvalDeleted:
        row = await self._eval(owner, eval_id)
        async with self._db.begin() as s:
            runs = select(EvalRunRow.id).where(EvalRunRow.eval_id == row.id)
            await s.execute(delete(EvalOutputItemRow).where(EvalOutputItemRow.run_id.in_(runs)))
            await s.execute(delete(EvalRunRow).where(EvalRunRow.eval_id == row.id))
            await s.execute(delete(EvalRow).where(EvalRow.id == row.id))
        return EvalDeleted(eval_id=eval_id)

    # -- runs ----------------------------------------------------------------------------

    async def create_run(
        self, owner: Owner, who: Principal, eval_id: str, req: RunCreateRequest
    ) -> EvalRun:
        row = await self._eval(owner, eval_id)
        definition = parse_definition(
            row.data_source_config, row.testing_criteria, self._registry.serves
        )
        source = parse_data_source(req.data_source)
        rows = await self._rows(owner, source.source)
        self._check_items(definition, rows)
        model = "(given samples)"
        if isinstance(source, CompletionsDataSource):
            self._check_completions(definition, source, who)
            model = source.model
        elif _sample_needed(definition) and any(r.sample is None for r in rows):
            raise InvalidRequestError(
                "This eval grades samples: every row of a jsonl data source needs `sample`.",
                param="data_source.source",
            )
        run = EvalRunRow(
            id=new_id("evalrun"),
            eval_id=row.id,
            name=req.name or f"{model} on {row.name}",
            model=model,
            status="queued",
            data_source=_display(source),
            items=[r.model_dump(exclude_none=True) for r in rows],
            principal=dataclasses.asdict(who),
            error=None,
            meta=req.metadata,
            result_counts=ResultCounts(total=len(rows)).model_dump(),
            per_criteria=[
                CriterionResult(testing_criteria=g.name).model_dump() for g in definition.graders
            ],
            per_model_usage=[],
            created_at=now(),
        )
        async with self._db.begin() as s:
            s.add(run)
        self._wake()
        return run_object(run)

    async def _rows(self, owner: Owner, source: Any) -> list[SourceRow]:
        if isinstance(source, FileContentSource):
            rows = source.content
        else:
            rows = await self._file_rows(owner, source.id)
        if len(rows) > self._settings.max_items:
            raise InvalidRequestError(
                f"An eval run takes at most {self._settings.max_items} items (got {len(rows)}).",
                param="data_source.source",
            )
        return rows

    async def _file_rows(self, owner: Owner, file_id: str) -> list[SourceRow]:
        path = await self._files.content(owner, file_id)
        data = await asyncio.to_thread(path.read_bytes)
        rows: list[SourceRow] = []
        for number, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            if len(rows) >= self._settings.max_items:
                break  # _rows refuses; no need to parse the rest
            try:
                rows.append(SourceRow.model_validate(orjson.loads(line)))
            except (orjson.JSONDecodeError, ValidationError):
                raise InvalidRequestError(
                    f'Line {number} of file {file_id} is not a JSON object {{"item": {{...}}}}.',
                    param="data_source.source.id",
                ) from None
        if not rows:
            raise InvalidRequestError(f"File {file_id} has no rows.", param="data_source.source.id")
        return rows

    def _check_items(self, definition: EvalDefinition, rows: list[SourceRow]) -> None:
        validator = jsonschema.Draft202012Validator(definition.config.item_schema)
        for i, row in enumerate(rows):
            error = jsonschema.exceptions.best_match(validator.iter_errors(row.item))
            if error is not None:
                raise InvalidRequestError(
                    f"Item {i} does not match the eval's item_schema: {error.message}",
                    param=f"data_source.source.content[{i}].item",
                )

    def _check_completions(
        self, definition: EvalDefinition, source: CompletionsDataSource, who: Principal
    ) -> None:
        try:
            spec = self._registry.get(source.model).spec
        except CorralError as exc:
            raise InvalidRequestError(str(exc), param="data_source.model") from None
        check_access(who, spec, param="data_source.model")
        messages = source.input_messages
        if isinstance(messages, TemplateMessages):
            for i, m in enumerate(messages.template):
                param = f"data_source.input_messages.template[{i}].content"
                check_template(m.text(), definition.config, param, sample_allowed=False)
        else:
            try:
                steps = parse_path(messages.item_reference)
            except TemplateError as exc:
                raise InvalidRequestError(
                    str(exc), param="data_source.input_messages.item_reference"
                ) from None
            if steps[0] != "item":
                raise InvalidRequestError(
                    "item_reference must name a field of the item (`item.messages`).",
                    param="data_source.input_messages.item_reference",
                )
        probe = {"model": source.model, "messages": [{"role": "user", "content": "probe"}]}
        try:
            ChatCompletionRequest.model_validate(probe | sampling_body(source))
        except ValidationError as exc:
            raise invalid_field(exc.errors(), prefix=("data_source.sampling_params",)) from None

    async def _run(self, owner: Owner, eval_id: str, run_id: str) -> EvalRunRow:
        await self._eval(owner, eval_id)
        async with self._db.session() as s:
            row: EvalRunRow | None = await s.scalar(
                select(EvalRunRow).where(EvalRunRow.id == run_id, EvalRunRow.eval_id == eval_id)
            )
        if row is None:
            raise NotFoundError(f"No run with id `{run_id}` in eval `{eval_id}`.", param="run_id")
        return row

    async def rerun(
        self, owner: Owner, who: Principal, eval_id: str, run_id: str, model: str
    ) -> EvalRun:
        """The same data and messages as an earlier run, sampled from another model (the
        console's "run again on"); the rows come from the run, so inline data needs no
        upload again."""
        row = await self._run(owner, eval_id, run_id)
        source = dict(row.data_source)
        if source.get("type") != "completions":
            raise InvalidRequestError(
                "Only a run that sampled a model can run again on another model.", param="model"
            )
        if source.get("source", {}).get("type") == "file_content":
            source["source"] = {"type": "file_content", "content": row.items}
        source["model"] = model
        req = RunCreateRequest(data_source=source)
        return await self.create_run(owner, who, eval_id, req)

    async def retrieve_run(self, owner: Owner, eval_id: str, run_id: str) -> EvalRun:
        return run_object(await self._run(owner, eval_id, run_id))

    async def list_runs(
        self,
        owner: Owner,
        eval_id: str,
        limit: int,
        after: str | None,
        order: str,
        status: str | None,
    ) -> EvalRunList:
        await self._eval(owner, eval_id)
        query = select(EvalRunRow).where(EvalRunRow.eval_id == eval_id)
        if status is not None:
            query = query.where(EvalRunRow.status == status)
        async with self._db.session() as s:
            rows = await page(s, query, EvalRunRow, limit, after, order, f"No run `{after}`.")
        return EvalRunList(**_listing([run_object(r) for r in rows], limit))

    async def cancel_run(self, owner: Owner, eval_id: str, run_id: str) -> EvalRun:
        row = await self._run(owner, eval_id, run_id)
        if row.status in RUN_TERMINAL:
            raise ConflictError(f"Run {run_id} has already ended ({row.status}).", param="run_id")
        async with self._db.begin() as s:
            await s.execute(
                update(EvalRunRow)
                .where(EvalRunRow.id == run_id, EvalRunRow.status.in_(("queued", "in_progress")))
                .values(status="canceled", finished_at=now())
            )
        return await self.retrieve_run(owner, eval_id, run_id)

    async def delete_run(self, owner: Owner, eval_id: str, run_id: str) -> RunDeleted:
        await self._run(owner, eval_id, run_id)
        async with self._db.begin() as s:
            await s.execute(delete(EvalOutputItemRow).where(EvalOutputItemRow.run_id == run_id))
            await s.execute(delete(EvalRunRow).where(EvalRunRow.id == run_id))
        return RunDeleted(run_id=run_id)

    # -- output items --------------------------------------------------------------------

    async def list_items(
        self,
        owner: Owner,
        eval_id: str,
        run_id: str,
        limit: int,
        after: str | None,
        order: str,
        status: str | None,
    ) -> OutputItemList:
        await self._run(owner, eval_id, run_id)
        if status is not None and status not in ("pass", "fail", "error"):
            raise InvalidRequestError("status must be pass, fail or error.", param="status")
        query = select(EvalOutputItemRow).where(EvalOutputItemRow.run_id == run_id)
        if status is not None:
            query = query.where(EvalOutputItemRow.status == status)
        rows = await self._item_page(query, limit, after, order)
        return OutputItemList(**_listing([item_object(r) for r in rows], limit))

    async def _item_page(
        self, query: Any, limit: int, after: str | None, order: str
    ) -> list[EvalOutputItemRow]:
        """Items page by their position in the data, which is stable and unique."""
        check_page(limit, order)
        position = EvalOutputItemRow.datasource_item_id
        async with self._db.session() as s:
            if after is not None:
                mark = await s.scalar(select(position).where(EvalOutputItemRow.id == after))
                if mark is None:
                    raise InvalidRequestError(f"No output item with id `{after}`.", param="after")
                query = query.where(position < mark if order == "desc" else position > mark)
            key = position.desc() if order == "desc" else position.asc()
            return list(await s.scalars(query.order_by(key).limit(limit + 1)))

    async def retrieve_item(
        self, owner: Owner, eval_id: str, run_id: str, item_id: str
    ) -> OutputItem:
        await self._run(owner, eval_id, run_id)
        async with self._db.session() as s:
            item: EvalOutputItemRow | None = await s.scalar(
                select(EvalOutputItemRow).where(
                    EvalOutputItemRow.id == item_id, EvalOutputItemRow.run_id == run_id
                )
            )
        if item is None:
            raise NotFoundError(f"No output item with id `{item_id}`.", param="output_item_id")
        return item_object(item)


def sampling_body(source: CompletionsDataSource) -> dict[str, Any]:
    """The chat request fields a run's sampling_params become."""
    return source.sampling_params.model_dump(exclude_none=True)


def parse_data_source(raw: dict[str, Any]) -> DataSource:
    kind = optional_string(raw.get("type"), "data_source.type")
    if kind not in DATA_SOURCES:
        raise InvalidRequestError(
            f"data_source type {kind!r} is not supported; use `completions` or `jsonl`.",
            param="data_source.type",
        )
    source: DataSource = strictly(DATA_SOURCES[str(kind)], raw, ("data_source",))
    return source


def _display(source: DataSource) -> dict[str, Any]:
    """The data source as the run shows it: inline content is not echoed back in full."""
    shown = source.model_dump(exclude_none=True)
    rows = shown.get("source", {})
    if rows.get("type") == "file_content":
        shown["source"] = {"type": "file_content", "items": len(rows["content"])}
    return shown
