"""/v1/vector_stores: stores made, read, listed, changed, deleted and searched. Stores
belong to the project that made them; another project's key is told they do not exist.

Files are attached through ``Attacher`` (``files.py`` here) and indexed by the worker
(``ingest.py``); a search runs through ``Searcher`` (``search.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from corral.accounts.keys import Principal
from corral.core.clock import aware, now
from corral.core.config import VectorStoreSettings
from corral.core.errors import InvalidRequestError, NotFoundError
from corral.core.ids import new_id
from corral.protocol.vector_stores import (
    ExpiresAfter,
    SearchRequest,
    SearchResultsPage,
    VectorStoreCreate,
    VectorStoreDeleted,
    VectorStoreList,
    VectorStoreObject,
    VectorStoreUpdate,
    chunking_of,
)
from corral.storage.db import Database
from corral.storage.paging import page
from corral.storage.tables import (
    VectorChunkRow,
    VectorStoreBatchRow,
    VectorStoreFileRow,
    VectorStoreRow,
)
from corral.vector_stores.batches import FileBatches
from corral.vector_stores.files import Attacher
from corral.vector_stores.search import Searcher, check_queries
from corral.vector_stores.store import store_object, store_totals

TOUCH_EVERY = timedelta(minutes=1)


def scope_of(who: Principal) -> str:
    return who.project_id or "-"


def refuse_unknown(req: VectorStoreCreate | VectorStoreUpdate | SearchRequest) -> None:
    for name in req.unknown_fields():
        raise InvalidRequestError(f"Unrecognized request argument supplied: {name}", param=name)


def missing_store(store_id: str) -> NotFoundError:
    return NotFoundError(f"No vector store found with id '{store_id}'.", param="vector_store_id")


def _expiry(expires: ExpiresAfter | None, active: datetime) -> datetime | None:
    return active + timedelta(days=expires.days) if expires is not None else None


class VectorStoreService:
    def __init__(
        self,
        db: Database,
        attacher: Attacher,
        batches: FileBatches,
        searcher: Searcher,
        settings: VectorStoreSettings,
    ) -> None:
        self._db = db
        self.files = attacher
        self.batches = batches
        self._searcher = searcher
        self._settings = settings

    async def row(self, who: Principal, store_id: str) -> VectorStoreRow:
        async with self._db.session() as s:
            row = await s.get(VectorStoreRow, store_id)
        if row is None or row.scope != scope_of(who):
            raise missing_store(store_id)
        return row

    async def object(self, row: VectorStoreRow) -> VectorStoreObject:
        counts, usage = await store_totals(self._db, [row.id])
        return store_object(row, counts[row.id], usage.get(row.id, 0))

    async def create(self, who: Principal, req: VectorStoreCreate) -> VectorStoreObject:
        refuse_unknown(req)
        if len(req.file_ids) > self._settings.max_batch_files:
            raise InvalidRequestError(
                f"At most {self._settings.max_batch_files} files at once.", param="file_ids"
            )
        moment = now()
        row = VectorStoreRow(
            id=new_id("vs", "_"),
            scope=scope_of(who),
            name=req.name or "",
            meta=req.metadata,
            expires_after=req.expires_after.model_dump() if req.expires_after else None,
            expires_at=_expiry(req.expires_after, moment),
            last_active_at=moment,
            created_at=moment,
            chunks=0,
            revision=0,
        )
        chunking = chunking_of(req.chunking_strategy)
        # The files are checked (yours, purpose, limits) before the store is written.
        found = await self.files.check_new(who, row.id, req.file_ids, 0, 0)
        async with self._db.begin() as s:
            s.add(row)
            await s.flush()
            for f in found:
                s.add(self.files.new_row(who, row.id, f, None, chunking, None))
        if found:
            self.files.wake()
        return await self.object(row)

    async def retrieve(self, who: Principal, store_id: str) -> VectorStoreObject:
        return await self.object(await self.row(who, store_id))

    async def update(
        self, who: Principal, store_id: str, req: VectorStoreUpdate
    ) -> VectorStoreObject:
        refuse_unknown(req)
        row = await self.row(who, store_id)
        given = req.model_fields_set
        async with self._db.begin() as s:
            held = await s.get(VectorStoreRow, row.id)
            if held is None:
                raise missing_store(store_id)
            if "name" in given:
                held.name = req.name or ""
            if "metadata" in given:
                held.meta = req.metadata
            if "expires_after" in given:
                held.expires_after = req.expires_after.model_dump() if req.expires_after else None
                held.expires_at = _expiry(req.expires_after, aware(held.last_active_at))
        return await self.object(held)

    async def list(
        self, who: Principal, limit: int, after: str | None, order: str
    ) -> VectorStoreList:
        query = select(VectorStoreRow).where(VectorStoreRow.scope == scope_of(who))
        async with self._db.session() as s:
            missing = f"No vector store found with id '{after}'."
            rows = await page(s, query, VectorStoreRow, limit, after, order, missing)
        rows = rows[: limit + 1]
        counts, usage = await store_totals(self._db, [r.id for r in rows[:limit]])
        data = [store_object(r, counts[r.id], usage.get(r.id, 0)) for r in rows[:limit]]
        return VectorStoreList(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            has_more=len(rows) > limit,
        )

    async def delete(self, who: Principal, store_id: str) -> VectorStoreDeleted:
        row = await self.row(who, store_id)
        async with self._db.begin() as s:
            # Chunks one by one through the FTS trigger; then the rows that point at it.
            await s.execute(delete(VectorChunkRow).where(VectorChunkRow.store_id == row.id))
            await s.execute(delete(VectorStoreFileRow).where(VectorStoreFileRow.store_id == row.id))
            await s.execute(
                delete(VectorStoreBatchRow).where(VectorStoreBatchRow.store_id == row.id)
            )
            await s.execute(delete(VectorStoreRow).where(VectorStoreRow.id == row.id))
        self._searcher.forget(row.id)
        return VectorStoreDeleted(id=row.id)

    async def search(self, who: Principal, store_id: str, req: SearchRequest) -> SearchResultsPage:
        """``POST /v1/vector_stores/{id}/search``."""
        return await self.search_stores(who, (store_id,), req)

    async def search_stores(
        self, who: Principal, store_ids: Sequence[str], req: SearchRequest
    ) -> SearchResultsPage:
        """One search over several of the caller's stores (what the Responses
        `file_search` tool's `vector_store_ids` asks for), results merged by score.
        Everything that can be refused (the request, a store that is not the caller's or
        has expired) is refused before the query is embedded."""
        refuse_unknown(req)
        queries = check_queries(req, self._settings)
        unique = tuple(dict.fromkeys(store_ids))
        if not unique:
            raise InvalidRequestError("Name at least one vector store.", param="vector_store_ids")
        rows = [await self.row(who, store_id) for store_id in unique]
        for row in rows:
            if row.expires_at is not None and aware(row.expires_at) <= now():
                raise InvalidRequestError(
                    f"Vector store {row.id} has expired.", param="vector_store_id", code="expired"
                )
        results = await self._searcher.search(who, rows, req)
        for row in rows:
            await self._touch(row)
        return SearchResultsPage(search_query=queries, data=results)

    async def _touch(self, row: VectorStoreRow) -> None:
        """A search makes the store active: its expiry moves with it. Written at most once
        a minute per store: a write per search would queue searches behind SQLite's one
        writer, for a time kept in days."""
        moment = now()
        if moment - aware(row.last_active_at) < TOUCH_EVERY:
            return
        expires = ExpiresAfter(**row.expires_after) if row.expires_after else None
        async with self._db.begin() as s:
            await s.execute(
                update(VectorStoreRow)
                .where(VectorStoreRow.id == row.id)
                .values(last_active_at=moment, expires_at=_expiry(expires, moment))
            )
