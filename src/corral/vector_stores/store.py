"""Rows into OpenAI's objects: a store's ``file_counts`` and ``usage_bytes`` are
computed from its files (one grouped query for a whole page of stores), never kept as
counters that a crash or a race could leave wrong."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import func, select

from corral.core.clock import aware, now
from corral.protocol.vector_stores import (
    ExpiresAfter,
    FileBatchObject,
    FileCounts,
    LastError,
    StaticChunking,
    StaticChunkingParam,
    VectorStoreFileObject,
    VectorStoreObject,
)
from corral.storage.db import Database
from corral.storage.tables import VectorStoreBatchRow, VectorStoreFileRow, VectorStoreRow


def seconds(moment: datetime | None) -> int | None:
    return int(aware(moment).timestamp()) if moment is not None else None


def counts_of(by_status: dict[str, int]) -> FileCounts:
    return FileCounts(**by_status, total=sum(by_status.values()))


async def store_totals(
    db: Database, store_ids: list[str]
) -> tuple[dict[str, FileCounts], dict[str, int]]:
    """Each store's file counts and usage bytes (its completed files')."""
    f = VectorStoreFileRow
    query = (
        select(f.store_id, f.status, func.count(), func.coalesce(func.sum(f.usage_bytes), 0))
        .where(f.store_id.in_(store_ids))
        .group_by(f.store_id, f.status)
    )
    async with db.session() as s:
        rows = (await s.execute(query)).all()
    statuses: dict[str, dict[str, int]] = defaultdict(dict)
    usage: dict[str, int] = defaultdict(int)
    for store_id, status, count, used in rows:
        statuses[store_id][status] = int(count)
        usage[store_id] += int(used) if status == "completed" else 0
    return {s: counts_of(statuses[s]) for s in store_ids}, dict(usage)


async def batch_counts(db: Database, batch_id: str) -> FileCounts:
    f = VectorStoreFileRow
    query = select(f.status, func.count()).where(f.batch_id == batch_id).group_by(f.status)
    async with db.session() as s:
        rows = (await s.execute(query)).all()
    return counts_of({status: int(n) for status, n in rows})


def store_object(row: VectorStoreRow, counts: FileCounts, usage: int) -> VectorStoreObject:
    expired = row.expires_at is not None and aware(row.expires_at) <= now()
    status = "expired" if expired else "in_progress" if counts.in_progress else "completed"
    return VectorStoreObject(
        id=row.id,
        created_at=seconds(row.created_at) or 0,
        name=row.name,
        usage_bytes=usage,
        file_counts=counts,
        status=status,
        expires_after=ExpiresAfter(**row.expires_after) if row.expires_after else None,
        expires_at=seconds(row.expires_at),
        last_active_at=seconds(row.last_active_at),
        metadata=row.meta,
    )


def file_object(row: VectorStoreFileRow) -> VectorStoreFileObject:
    return VectorStoreFileObject(
        id=row.file_id,
        created_at=seconds(row.created_at) or 0,
        vector_store_id=row.store_id,
        usage_bytes=row.usage_bytes,
        status=row.status,
        last_error=LastError(**row.last_error) if row.last_error else None,
        attributes=row.attributes,
        chunking_strategy=StaticChunkingParam(type="static", static=StaticChunking(**row.chunking)),
    )


def batch_object(row: VectorStoreBatchRow, counts: FileCounts) -> FileBatchObject:
    status = row.status
    if status == "in_progress" and not counts.in_progress:
        status = "failed" if counts.failed and not counts.completed else "completed"
    return FileBatchObject(
        id=row.id,
        created_at=seconds(row.created_at) or 0,
        vector_store_id=row.store_id,
        status=status,
        file_counts=counts,
    )
