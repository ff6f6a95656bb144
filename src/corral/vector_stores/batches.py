"""A vector store's file batches: many files attached at once (each with the batch's or
its own attributes and chunking), read with their counts, cancelled."""

from __future__ import annotations

from sqlalchemy import update

from corral.accounts.keys import Principal
from corral.core.clock import now
from corral.core.config import VectorStoreSettings
from corral.core.errors import InvalidRequestError, NotFoundError
from corral.core.ids import new_id
from corral.protocol.vector_stores import FileBatchCreate, FileBatchObject, chunking_of
from corral.storage.db import Database
from corral.storage.tables import VectorStoreBatchRow, VectorStoreFileRow, VectorStoreRow
from corral.vector_stores.files import Attacher
from corral.vector_stores.store import batch_counts, batch_object


def missing_batch(batch_id: str) -> NotFoundError:
    return NotFoundError(f"No file batch found with id '{batch_id}'.", param="batch_id")


class FileBatches:
    def __init__(self, db: Database, attacher: Attacher, settings: VectorStoreSettings) -> None:
        self._db = db
        self._attacher = attacher
        self._settings = settings

    async def create(
        self, who: Principal, store: VectorStoreRow, req: FileBatchCreate
    ) -> FileBatchObject:
        for name in req.unknown_fields():
            raise InvalidRequestError(f"Unrecognized request argument supplied: {name}", param=name)
        wanted = req.each()
        if not wanted or len(wanted) > self._settings.max_batch_files:
            raise InvalidRequestError(
                f"A file batch has 1 to {self._settings.max_batch_files} files.", param="file_ids"
            )
        count, size, held = await self._attacher.held(store.id)
        fresh = [w for w in wanted if w.file_id not in held]  # attached already: left as is
        found = await self._attacher.check_new(
            who, store.id, [w.file_id for w in fresh], count, size
        )
        by_id = {f.id: f for f in found}
        row = VectorStoreBatchRow(
            id=new_id("vsfb", "_"), store_id=store.id, status="in_progress", created_at=now()
        )
        async with self._db.begin() as s:
            s.add(row)
            await s.flush()
            for w in fresh:
                if w.file_id in by_id:
                    chunking = chunking_of(w.chunking_strategy)
                    s.add(
                        self._attacher.new_row(
                            who, store.id, by_id.pop(w.file_id), w.attributes, chunking, row.id
                        )
                    )
        self._attacher.wake()
        return batch_object(row, await batch_counts(self._db, row.id))

    async def row(self, store_id: str, batch_id: str) -> VectorStoreBatchRow:
        async with self._db.session() as s:
            row = await s.get(VectorStoreBatchRow, batch_id)
        if row is None or row.store_id != store_id:
            raise missing_batch(batch_id)
        return row

    async def retrieve(self, store_id: str, batch_id: str) -> FileBatchObject:
        row = await self.row(store_id, batch_id)
        return batch_object(row, await batch_counts(self._db, row.id))

    async def cancel(self, store_id: str, batch_id: str) -> FileBatchObject:
        """Its files not yet indexed are cancelled; a worker indexing one drops its work
        (every worker write is conditional on ``in_progress``)."""
        row = await self.row(store_id, batch_id)
        if row.status != "in_progress" or not (await batch_counts(self._db, row.id)).in_progress:
            return await self.retrieve(store_id, batch_id)  # over already: as it ended
        async with self._db.begin() as s:
            f = VectorStoreFileRow
            await s.execute(
                update(f)
                .where(f.batch_id == row.id, f.status == "in_progress")
                .values(status="cancelled", worker=None)
            )
            await s.execute(
                update(VectorStoreBatchRow)
                .where(VectorStoreBatchRow.id == row.id)
                .values(status="cancelled")
            )
        row.status = "cancelled"
        return batch_object(row, await batch_counts(self._db, row.id))
