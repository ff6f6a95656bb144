"""Usage and cost reports in OpenAI's organization usage/costs shapes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from corral.accounts.accounting import BATCH
from corral.core.clock import aware, now
from corral.core.errors import InvalidRequestError
from corral.storage.db import Database
from corral.storage.tables import NANO, Usage, VectorStoreFileRow, VectorStoreRow

BUCKETS = {"1m": 60, "1h": 3600, "1d": 86400}
# The last start a datetime can hold with a month of buckets after it (year 9999).
LAST_START = int(datetime(9999, 12, 1, tzinfo=UTC).timestamp())
MAX_BUCKETS = {"1m": 1440, "1h": 168, "1d": 31}
Key = Callable[[Usage], Any]


def line_item(row: Usage) -> str:
    """A cost's line item: the model, and its batch price point apart (``model, batch``)."""
    return f"{row.model}, batch" if row.endpoint == BATCH else row.model


USAGE_GROUPS: dict[str, Key] = {
    "project_id": lambda r: r.project_id,
    "api_key_id": lambda r: r.key_id,
    "model": lambda r: r.model,
    "batch": lambda r: r.endpoint == BATCH,
    "batch_endpoint": lambda r: r.batch_endpoint,
}
VECTOR_STORE_GROUPS: dict[str, Key] = {"project_id": lambda r: r}
COST_GROUPS: dict[str, Key] = {
    "project_id": lambda r: r.project_id,
    "line_item": line_item,
    "batch_endpoint": lambda r: r.batch_endpoint,
}


# Embeddings: the endpoint's, and those vector stores make when they index a file or
# embed a search's queries.
EMBEDDING_ENDPOINTS = frozenset({"embeddings", "vector_stores", "vector_stores.search"})


def _embeddings(row: Usage) -> bool:
    """Embeddings are not completions usage, whether run alone or as a batch's lines."""
    return row.endpoint in EMBEDDING_ENDPOINTS or row.batch_endpoint in EMBEDDING_ENDPOINTS


@dataclass(frozen=True)
class Window:
    start: int
    end: int
    width: int

    @classmethod
    def parse(cls, start: int, end: int | None, bucket: str, limit: int | None) -> Window:
        if bucket not in BUCKETS:
            raise InvalidRequestError("bucket_width is 1m, 1h or 1d.", param="bucket_width")
        if not 0 <= start <= LAST_START:
            # datetime.fromtimestamp raised OverflowError/ValueError (a 500) on these.
            raise InvalidRequestError(
                f"start_time must be Unix seconds between 0 and {LAST_START}.", param="start_time"
            )
        width = BUCKETS[bucket]
        count = min(limit or MAX_BUCKETS[bucket], MAX_BUCKETS[bucket])
        start -= start % width
        stop = end if end is not None else start + width * count
        stop = min(stop, start + width * count)
        if stop <= start:
            raise InvalidRequestError("end_time must be after start_time.", param="end_time")
        return cls(start, stop, width)


def _groups(group_by: list[str] | None, allowed: dict[str, Key]) -> list[str]:
    for name in group_by or []:
        if name not in allowed:
            raise InvalidRequestError(
                f"group_by accepts {', '.join(allowed)}; got `{name}`.", param="group_by"
            )
    return group_by or []


class UsageService:
    def __init__(self, db: Database, settled: Callable[[], Awaitable[None]] | None = None) -> None:
        self._db = db
        self._settled = settled  # waits for the settlements still being written

    async def _rows(self, window: Window, project_ids: list[str] | None) -> list[Usage]:
        if self._settled is not None:
            await self._settled()
        query = select(Usage).where(
            Usage.created_at >= datetime.fromtimestamp(window.start, UTC),
            Usage.created_at < datetime.fromtimestamp(window.end, UTC),
        )
        if project_ids:
            query = query.where(Usage.project_id.in_(project_ids))
        async with self._db.session() as s:
            return list(await s.scalars(query))

    def _bucketed(
        self, window: Window, rows: list[Usage], groups: list[str], mapping: dict[str, Key]
    ) -> dict[int, dict[tuple[Any, ...], list[Usage]]]:
        out: dict[int, dict[tuple[Any, ...], list[Usage]]] = {
            t: defaultdict(list) for t in range(window.start, window.end, window.width)
        }
        for row in rows:
            moment = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
            at = int(moment.timestamp())
            key = tuple(mapping[g](row) for g in groups)
            out[at - (at - window.start) % window.width][key].append(row)
        return out

    async def completions(
        self, window: Window, group_by: list[str] | None, project_ids: list[str] | None
    ) -> dict[str, Any]:
        groups = _groups(group_by, USAGE_GROUPS)
        rows = [r for r in await self._rows(window, project_ids) if not _embeddings(r)]
        data = []
        for start, grouped in self._bucketed(window, rows, groups, USAGE_GROUPS).items():
            results = []
            for key, items in grouped.items():
                result: dict[str, Any] = {
                    "object": "organization.usage.completions.result",
                    "input_tokens": sum(r.prompt_tokens for r in items),
                    "input_cached_tokens": sum(r.cached_tokens for r in items),
                    "output_tokens": sum(r.completion_tokens for r in items),
                    "input_audio_tokens": 0,
                    "output_audio_tokens": 0,
                    "num_model_requests": len(items),
                    "project_id": None,
                    "user_id": None,
                    "api_key_id": None,
                    "model": None,
                    "batch": None,
                    "batch_endpoint": None,
                }
                result.update(dict(zip(groups, key, strict=True)))
                results.append(result)
            data.append(_bucket(start, window.width, results))
        return _page(data)

    async def costs(
        self, window: Window, group_by: list[str] | None, project_ids: list[str] | None
    ) -> dict[str, Any]:
        groups = _groups(group_by, COST_GROUPS)
        rows = await self._rows(window, project_ids)
        data = []
        for start, grouped in self._bucketed(window, rows, groups, COST_GROUPS).items():
            results = []
            for key, items in grouped.items():
                result: dict[str, Any] = {
                    "object": "organization.costs.result",
                    "amount": {"value": sum(r.cost_nano for r in items) / NANO, "currency": "usd"},
                    "line_item": None,
                    "project_id": None,
                    "batch_endpoint": None,
                }
                result.update(dict(zip(groups, key, strict=True)))
                results.append(result)
            data.append(_bucket(start, window.width, results))
        return _page(data)

    async def vector_stores(
        self, window: Window, group_by: list[str] | None, project_ids: list[str] | None
    ) -> dict[str, Any]:
        """The bytes vector stores hold (their completed files' ``usage_bytes``), at each
        bucket's end, or now for the bucket that holds now; buckets after now hold none.
        Rebuilt from the files the stores hold now, each counted from when it was
        attached: a file or store removed is gone from past buckets too (no history of
        removals is kept)."""
        by_project = bool(_groups(group_by, VECTOR_STORE_GROUPS))
        f, v = VectorStoreFileRow, VectorStoreRow
        held = [f.status == "completed"]
        if project_ids:
            held.append(v.scope.in_(project_ids))
        start = datetime.fromtimestamp(window.start, UTC)
        before = (
            select(v.scope, func.coalesce(func.sum(f.usage_bytes), 0))
            .join(v, v.id == f.store_id)
            .where(*held, f.created_at < start)
            .group_by(v.scope)
        )
        added = (
            select(v.scope, f.created_at, f.usage_bytes)
            .join(v, v.id == f.store_id)
            .where(*held, f.created_at >= start)
            .order_by(f.created_at)
        )
        async with self._db.session() as s:
            held_before = (await s.execute(before)).all()
            additions = (await s.execute(added)).all()
        totals: dict[str | None, int] = defaultdict(int)

        def add(scope: str, used: int) -> None:
            project = None if scope == "-" else scope  # an admin's or open mode's stores
            totals[project if by_project else None] += int(used)

        for scope, used in held_before:
            add(scope, used)
        moment, at, data = now(), 0, []
        for start_s in range(window.start, window.end, window.width):
            end = min(datetime.fromtimestamp(start_s + window.width, UTC), moment)
            while at < len(additions) and aware(additions[at][1]) < end:
                add(additions[at][0], additions[at][2])
                at += 1
            results = [
                {
                    "object": "organization.usage.vector_stores.result",
                    "usage_bytes": used,
                    "project_id": project,
                }
                for project, used in totals.items()
                if used and start_s <= moment.timestamp()
            ]
            data.append(_bucket(start_s, window.width, results))
        return _page(data)


@dataclass(frozen=True)
class DailyRow:
    model: str
    requests: int
    input: int
    output: int
    cost: float


@dataclass(frozen=True)
class Day:
    """One day of usage: per-model rows, and the day's total cost and tokens."""

    day: str
    cost: float
    tokens: int
    rows: list[DailyRow]


async def daily(
    reports: UsageService, window: Window, project_ids: list[str] | None = None
) -> list[Day]:
    """Tokens and cost per day and model (a model's batch usage on rows of its own, one
    per endpoint its lines ran), for `corral usage`, the /usage page and the console (one
    project's)."""
    tokens = await reports.completions(window, ["model", "batch", "batch_endpoint"], project_ids)
    costs = await reports.costs(window, ["line_item", "batch_endpoint"], project_ids)
    cost_of = {
        (b["start_time"], r["line_item"], r["batch_endpoint"]): r["amount"]["value"]
        for b in costs["data"]
        for r in b["results"]
    }
    days = []
    for bucket in tokens["data"]:
        start = bucket["start_time"]
        rows = []
        for r in bucket["results"]:
            item = f"{r['model']}, batch" if r["batch"] else r["model"]
            cost = cost_of.get((start, item, r["batch_endpoint"]), 0.0)
            rows.append(
                DailyRow(
                    _row_name(r),
                    r["num_model_requests"],
                    r["input_tokens"],
                    r["output_tokens"],
                    cost,
                )
            )
        days.append(
            Day(
                day=datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d"),
                cost=sum(v for (at, _, _), v in cost_of.items() if at == start),
                tokens=sum(r.input + r.output for r in rows),
                rows=rows,
            )
        )
    return days


def _row_name(result: dict[str, Any]) -> str:
    if not result["batch"]:
        return str(result["model"])
    via = result["batch_endpoint"]  # rows from before it was recorded have none
    return f"{result['model']} (batch, {via})" if via else f"{result['model']} (batch)"


def _bucket(start: int, width: int, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "bucket", "start_time": start, "end_time": start + width, "results": results}


def _page(data: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "page", "data": data, "has_more": False, "next_page": None}
