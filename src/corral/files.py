"""Uploaded files: bytes under ``<data_dir>/files/<id>``, metadata in the database.

An upload is written to a temporary file in the same folder and renamed to its opaque id
once complete, so a file is never seen half written. The size limit is checked as the
bytes arrive. The client's filename is metadata only, never part of a path.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from sqlalchemy import delete, select

from corral.core.errors import InvalidRequestError, NotFoundError, RequestTooLargeError
from corral.core.ids import new_id
from corral.protocol.files import PURPOSES, FileDeleted, FileList, FileObject
from corral.storage.db import Database
from corral.storage.paging import page
from corral.storage.tables import StoredFile

MAX_FILENAME = 512
MAX_LIST = 10_000


@dataclass(frozen=True)
class Owner:
    org_id: str | None
    project_id: str | None


def _object(row: StoredFile) -> FileObject:
    return FileObject(
        id=row.id,
        bytes=row.bytes,
        created_at=int(row.created_at.timestamp()),
        filename=row.filename,
        purpose=row.purpose,
    )


class Upload:
    """A file being received: bytes go to a temporary file, bounded by ``limit``."""

    def __init__(self, root: Path, limit: int) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.limit = limit
        self.size = 0
        self.tmp = root / f".upload-{secrets.token_hex(16)}"
        self._f: IO[bytes] | None = self.tmp.open("xb")

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise RequestTooLargeError(
                f"The file is larger than the limit of {self.limit} bytes.", param="file"
            )
        assert self._f is not None
        self._f.write(data)

    def written(self) -> Path:
        """The bytes received so far, flushed to the temporary file, for a check."""
        assert self._f is not None
        self._f.flush()
        return self.tmp

    def finish(self, final: Path) -> None:
        assert self._f is not None
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        self._f = None
        os.replace(self.tmp, final)

    def discard(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
        self.tmp.unlink(missing_ok=True)


class FileService:
    def __init__(self, db: Database, root: Path, max_bytes: int) -> None:
        self._db = db
        self.root = root
        self.max_bytes = max_bytes

    def begin_upload(self) -> Upload:
        return Upload(self.root, self.max_bytes)

    def path_of(self, file_id: str) -> Path:
        # Ids are ours (checked against the database before use), never a client's text.
        return self.root / file_id

    async def commit(self, upload: Upload, owner: Owner, filename: str, purpose: str) -> FileObject:
        if purpose not in PURPOSES:
            raise InvalidRequestError(
                f"Invalid purpose `{purpose}`: expected one of {', '.join(PURPOSES)}.",
                param="purpose",
            )
        return await self._store(upload, owner, filename, purpose)

    async def create(self, owner: Owner, filename: str, purpose: str, data: bytes) -> FileObject:
        """A file corral makes (a batch's output): any purpose, no upload limit."""
        upload = Upload(self.root, len(data))
        try:
            upload.write(data)
            return await self._store(upload, owner, filename, purpose)
        finally:
            upload.discard()

    async def _store(self, upload: Upload, owner: Owner, filename: str, purpose: str) -> FileObject:
        name = os.path.basename(filename.replace("\\", "/"))[:MAX_FILENAME] or "upload"
        file_id = new_id("file")
        upload.finish(self.path_of(file_id))
        row = StoredFile(
            id=file_id,
            org_id=owner.org_id,
            project_id=owner.project_id,
            filename=name,
            purpose=purpose,
            bytes=upload.size,
            created_at=datetime.now(UTC),
        )
        try:
            async with self._db.begin() as s:
                s.add(row)
        except BaseException:
            self.path_of(file_id).unlink(missing_ok=True)
            raise
        return _object(row)

    async def _row(self, owner: Owner, file_id: str) -> StoredFile:
        async with self._db.session() as s:
            row = await s.get(StoredFile, file_id)
        if row is None or row.project_id != owner.project_id:
            raise NotFoundError(f"No such File object: {file_id}", param="file_id")
        return row

    async def retrieve(self, owner: Owner, file_id: str) -> FileObject:
        return _object(await self._row(owner, file_id))

    async def content(self, owner: Owner, file_id: str) -> Path:
        row = await self._row(owner, file_id)
        path = self.path_of(row.id)
        if not path.is_file():
            raise NotFoundError(f"The content of {file_id} is gone.", param="file_id")
        return path

    async def list(
        self, owner: Owner, purpose: str | None, limit: int, after: str | None, order: str
    ) -> FileList:
        query = select(StoredFile).where(
            StoredFile.project_id.is_(None)
            if owner.project_id is None
            else StoredFile.project_id == owner.project_id
        )
        if purpose is not None:
            query = query.where(StoredFile.purpose == purpose)
        async with self._db.session() as s:
            missing = f"No such File object: {after}"
            rows = await page(s, query, StoredFile, limit, after, order, missing, MAX_LIST)
        data = [_object(r) for r in rows[:limit]]
        return FileList(
            data=data,
            has_more=len(rows) > limit,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
        )

    async def delete(self, owner: Owner, file_id: str) -> FileDeleted:
        row = await self._row(owner, file_id)
        async with self._db.begin() as s:
            await s.execute(delete(StoredFile).where(StoredFile.id == row.id))
        self.path_of(row.id).unlink(missing_ok=True)
        return FileDeleted(id=row.id)
