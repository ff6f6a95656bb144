"""A vector store's files: attached (checked: the caller's file, a purpose that may be
searched, the store's limits), listed, read, given new attributes, removed (with their
chunks). Indexing them is the worker's (``ingest.py``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import delete, func, select, update

from corral.accounts.keys import Principal
from corral.core.clock import now
from corral.core.config import VectorStoreSettings
from corral.core.errors import InvalidRequestError, NotFoundError
from corral.core.ids import new_id
from corral.files import FileService, Owner
from corral.protocol.files import FileObject
from corral.protocol.vector_stores import (
    FILE_STATUSES,
    FileContentPage,
    FileCreate,
    FileUpdate,
    StaticChunking,
    TextContent,
    VectorStoreFileDeleted,
    VectorStoreFileList,
    VectorStoreFileObject,
    chunking_of,
)
from corral.storage.db import Database
from corral.storage.paging import check_page
from corral.storage.tables import VectorChunkRow, VectorStoreFileRow, VectorStoreRow
from corral.vector_stores.parsing import extract_text
from corral.vector_stores.store import file_object

SEARCHABLE_PURPOSES = ("assistants", "user_data")


def missing_file(file_id: str) -> NotFoundError:
    return NotFoundError(
        f"No file found with id '{file_id}' in this vector store.", param="file_id"
    )


class Attacher:
    def __init__(
        self,
        db: Database,
        files: FileService,
        settings: VectorStoreSettings,
        wake: Callable[[], None],
        forget: Callable[[str], None],
    ) -> None:
        self._db = db
        self._files = files
        self._settings = settings
        self._wake = wake
        self._forget = forget  # a store's cached vectors, once its chunks changed

    def wake(self) -> None:
        """Tell this process's worker that files wait."""
        self._wake()

    async def check_new(
        self, who: Principal, store_id: str, file_ids: list[str], count: int, size: int
    ) -> list[FileObject]:
        """The files to attach, each the caller's and searchable, within the store's
        bounds (``count`` files of ``size`` bytes already in it)."""
        owner = Owner(who.org_id, who.project_id)
        found: dict[str, FileObject] = {}
        for file_id in file_ids:
            f = await self._files.retrieve(owner, file_id)  # 404 for another project's
            if f.purpose not in SEARCHABLE_PURPOSES:
                raise InvalidRequestError(
                    f"File {f.id} has purpose `{f.purpose}`; a vector store takes files of "
                    f"purpose {' or '.join(f'`{p}`' for p in SEARCHABLE_PURPOSES)}.",
                    param="file_id",
                )
            found[f.id] = f
        s = self._settings
        if count + len(found) > s.max_files_per_store:
            raise InvalidRequestError(
                f"A vector store holds at most {s.max_files_per_store} files.", param="file_id"
            )
        if size + sum(f.bytes for f in found.values()) > s.max_store_bytes:
            raise InvalidRequestError(
                f"A vector store holds at most {s.max_store_bytes} bytes of files.",
                param="file_id",
            )
        return list(found.values())

    def new_row(
        self,
        who: Principal,
        store_id: str,
        f: FileObject,
        attributes: dict[str, Any] | None,
        chunking: StaticChunking,
        batch_id: str | None,
    ) -> VectorStoreFileRow:
        return VectorStoreFileRow(
            id=new_id("vsf", "_"),
            store_id=store_id,
            file_id=f.id,
            batch_id=batch_id,
            filename=f.filename,
            bytes=f.bytes,
            status="in_progress",
            attributes=attributes,
            chunking=chunking.model_dump(),
            usage_bytes=0,
            chunks=0,
            principal=asdict(who),
            created_at=now(),
        )

    async def held(self, store_id: str) -> tuple[int, int, set[str]]:
        """The store's file count, their bytes, and their ids."""
        f = VectorStoreFileRow
        async with self._db.session() as s:
            ids = set(await s.scalars(select(f.file_id).where(f.store_id == store_id)))
            size = await s.scalar(
                select(func.coalesce(func.sum(f.bytes), 0)).where(f.store_id == store_id)
            )
        return len(ids), int(size or 0), ids

    async def attach(
        self, who: Principal, store: VectorStoreRow, req: FileCreate
    ) -> VectorStoreFileObject:
        for name in req.unknown_fields():
            raise InvalidRequestError(f"Unrecognized request argument supplied: {name}", param=name)
        count, size, ids = await self.held(store.id)
        if req.file_id in ids:  # attaching again is a no-op: the file as it is
            return file_object(await self.row(store.id, req.file_id))
        (found,) = await self.check_new(who, store.id, [req.file_id], count, size)
        row = self.new_row(
            who, store.id, found, req.attributes, chunking_of(req.chunking_strategy), None
        )
        async with self._db.begin() as s:
            s.add(row)
        self._wake()
        return file_object(row)

    async def row(self, store_id: str, file_id: str) -> VectorStoreFileRow:
        f = VectorStoreFileRow
        async with self._db.session() as s:
            row = await s.scalar(select(f).where(f.store_id == store_id, f.file_id == file_id))
        if row is None:
            raise missing_file(file_id)
        return row

    async def retrieve(self, store_id: str, file_id: str) -> VectorStoreFileObject:
        return file_object(await self.row(store_id, file_id))

    async def list(
        self,
        store_id: str,
        limit: int,
        after: str | None,
        order: str,
        status: str | None,
        batch_id: str | None = None,
    ) -> VectorStoreFileList:
        check_page(limit, order)
        if status is not None and status not in FILE_STATUSES:
            raise InvalidRequestError(
                f"`filter` must be one of {', '.join(FILE_STATUSES)}.", param="filter"
            )
        f = VectorStoreFileRow
        query = select(f).where(f.store_id == store_id)
        if status is not None:
            query = query.where(f.status == status)
        if batch_id is not None:
            query = query.where(f.batch_id == batch_id)
        query = await self._after(query, store_id, after, order == "desc")
        key = (
            (f.created_at.desc(), f.file_id.desc())
            if order == "desc"
            else (f.created_at, f.file_id)
        )
        async with self._db.session() as s:
            rows = list(await s.scalars(query.order_by(*key).limit(limit + 1)))
        data = [file_object(r) for r in rows[:limit]]
        return VectorStoreFileList(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            has_more=len(rows) > limit,
        )

    async def names(self, store_id: str, file_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """The filename and uploaded size of each of these files of the store (the file
        object has neither; the console's store page shows both)."""
        f = VectorStoreFileRow
        query = select(f.file_id, f.filename, f.bytes).where(
            f.store_id == store_id, f.file_id.in_(file_ids)
        )
        async with self._db.session() as s:
            rows = (await s.execute(query)).all()
        return {file_id: (filename, int(size)) for file_id, filename, size in rows}

    async def _after(self, query: Any, store_id: str, after: str | None, desc: bool) -> Any:
        """Keyset paging on (created_at, file id) within the store (``after``: a file id)."""
        if after is None:
            return query
        f = VectorStoreFileRow
        async with self._db.session() as s:
            cursor = await s.scalar(select(f).where(f.store_id == store_id, f.file_id == after))
        if cursor is None:
            raise InvalidRequestError(f"No file found with id '{after}'.", param="after")
        same = f.created_at == cursor.created_at
        if desc:
            return query.where((f.created_at < cursor.created_at) | (same & (f.file_id < after)))
        return query.where((f.created_at > cursor.created_at) | (same & (f.file_id > after)))

    async def update(self, store_id: str, file_id: str, req: FileUpdate) -> VectorStoreFileObject:
        for name in req.unknown_fields():
            raise InvalidRequestError(f"Unrecognized request argument supplied: {name}", param=name)
        row = await self.row(store_id, file_id)
        async with self._db.begin() as s:
            await s.execute(
                update(VectorStoreFileRow)
                .where(VectorStoreFileRow.id == row.id)
                .values(attributes=req.attributes)
            )
        row.attributes = req.attributes
        return file_object(row)

    async def remove(self, store_id: str, file_id: str) -> VectorStoreFileDeleted:
        """The file leaves the store with its chunks; the uploaded file itself stays."""
        row = await self.row(store_id, file_id)
        async with self._db.begin() as s:
            c = VectorChunkRow
            gone = await s.execute(
                delete(c).where(c.store_id == store_id, c.file_id == row.file_id)
            )
            await s.execute(delete(VectorStoreFileRow).where(VectorStoreFileRow.id == row.id))
            if gone.rowcount:
                await s.execute(
                    update(VectorStoreRow)
                    .where(VectorStoreRow.id == store_id)
                    .values(
                        chunks=VectorStoreRow.chunks - gone.rowcount,
                        revision=VectorStoreRow.revision + 1,
                    )
                )
        self._forget(store_id)
        return VectorStoreFileDeleted(id=row.file_id)

    async def forget_file(self, file_id: str) -> None:
        """An uploaded file was deleted: it leaves every store it was in, as OpenAI's
        file deletion does (a file is only ever in its own project's stores)."""
        f = VectorStoreFileRow
        async with self._db.session() as s:
            stores = list(await s.scalars(select(f.store_id).where(f.file_id == file_id)))
        for store_id in stores:
            with contextlib.suppress(NotFoundError):  # removed meanwhile
                await self.remove(store_id, file_id)

    async def content(self, store_id: str, file_id: str) -> FileContentPage:
        """The file's parsed text (parsed again: it is kept only as overlapping chunks)."""
        row = await self.row(store_id, file_id)
        path = self._files.path_of(row.file_id)
        if row.status != "completed" or not path.is_file():
            return FileContentPage(data=[])
        limit = self._settings.max_text_bytes
        text = await asyncio.to_thread(extract_text, path, row.filename, limit)
        return FileContentPage(data=[TextContent(text=text)])
