"""The indexing worker: a task in each API process that claims attached files from the
database (``storage.claims``, as batches and eval runs are claimed), parses, chunks and
embeds each, and writes its chunks.

A file's chunks are written in the one transaction that marks it ``completed``, and that
transaction first takes room for them in the store (a conditional update on the store's
chunk count), so a store never passes ``max_chunks_per_store`` and a file is never seen
half indexed. Every write is conditional on the file still being ``in_progress`` and
this worker's: a file cancelled or removed meanwhile keeps nothing of the work. A worker
that dies leaves its file to another (or to itself after a restart) once its heartbeat
is stale; the work starts again from the file.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from corral.accounts.keys import Principal, stored_principal
from corral.core.config import VectorStoreSettings
from corral.core.errors import CorralError, RateLimitError
from corral.files import FileService
from corral.storage.claims import ClaimedJobs, poll_forever
from corral.storage.db import Database
from corral.storage.tables import VectorChunkRow, VectorStoreFileRow, VectorStoreRow
from corral.vector_stores.chunking import Chunk, Layout, layout, pieces
from corral.vector_stores.embedder import INGEST, Embedder
from corral.vector_stores.parsing import ParseError, extract_text

if TYPE_CHECKING:
    from corral.vector_stores.vectors import Vectors

log = logging.getLogger(__name__)
RATE_RETRIES = 5


class Stopped(Exception):
    """The file is no longer this worker's to index (cancelled, removed, taken over)."""


class IndexWorker:
    def __init__(
        self, db: Database, files: FileService, embedder: Embedder, settings: VectorStoreSettings
    ) -> None:
        self._db = db
        self._files = files
        self._embedder = embedder
        self._settings = settings
        self._event = asyncio.Event()
        t = VectorStoreFileRow
        self.jobs = ClaimedJobs(
            db,
            t,
            "vector store file",
            running=("in_progress",),
            claimable=lambda: (t.status == "in_progress") & t.worker.is_(None),
        )

    def wake(self) -> None:
        self._event.set()

    async def run_forever(self) -> None:
        stale = timedelta(seconds=self._settings.stale_after_s)
        await poll_forever(self.jobs, self.execute, self._event, self._settings.poll_s, stale)

    async def release(self) -> None:
        await self.jobs.release()

    async def execute(self, row_id: str) -> None:
        async with self._db.session() as s:
            row = await s.get(VectorStoreFileRow, row_id)
        if row is None:
            return
        try:
            await self._index(row)
        except Stopped:
            log.info("vector store file %s stopped before it was indexed", row.file_id)
        except ParseError as exc:
            await self._fail(row_id, exc.code, exc.message)
        except CorralError as exc:  # the embedding model refused, a budget was spent …
            await self._fail(row_id, "server_error", exc.message)
        except Exception:
            log.exception("indexing vector store file %s failed", row.file_id)
            await self._fail(row_id, "server_error", "The file could not be indexed.")

    async def _index(self, row: VectorStoreFileRow) -> None:
        path = self._files.path_of(row.file_id)
        if not path.is_file():
            raise ParseError("invalid_file", f"The file {row.file_id} was deleted.")
        limit = self._settings.max_text_bytes
        text = await asyncio.to_thread(extract_text, path, row.filename, limit)
        size, overlap = row.chunking["max_chunk_size_tokens"], row.chunking["chunk_overlap_tokens"]
        laid = await asyncio.to_thread(layout, text, size, overlap)
        await self._check_room(row, len(laid.chunks))
        vectors = await self._embed(row, laid)
        await self._commit(row, laid.chunks, vectors)

    async def _check_room(self, row: VectorStoreFileRow, n: int) -> None:
        """Refused before the embedding work (and again, atomically, at the commit)."""
        most = self._settings.max_file_chunks
        if n > most:
            raise ParseError("invalid_file", f"The file makes {n} chunks; at most {most}.")
        async with self._db.session() as s:
            held = await s.scalar(
                select(VectorStoreRow.chunks).where(VectorStoreRow.id == row.store_id)
            )
        if held is None:
            raise Stopped
        if held + n > self._settings.max_chunks_per_store:
            raise ParseError("invalid_file", self._full_message(n))

    def _full_message(self, n: int) -> str:
        return (
            f"The vector store has no room for the file's {n} chunks "
            f"(at most {self._settings.max_chunks_per_store} in a store)."
        )

    async def _embed(self, row: VectorStoreFileRow, laid: Layout) -> Vectors:
        """Each chunk's vector: its units' pieces embedded in batches (a heartbeat
        between them, which also notices a cancel), then pooled."""
        limit = self._embedder.piece_bytes()
        texts: list[str] = []
        owner: list[int] = []
        for i, unit in enumerate(laid.units):
            for piece in pieces(unit, limit):
                texts.append(piece)
                owner.append(i)
        who = stored_principal(row.principal)
        parts: list[Vectors] = []
        step = self._settings.embed_batch
        for start in range(0, len(texts), step):
            if await self.jobs.beat(row.id) != "in_progress":
                raise Stopped
            batch = texts[start : start + step]
            parts.append(await self._embed_batch(who, batch))
        import numpy as np  # on first use (see embedder.py)

        from corral.vector_stores.vectors import pooled

        weight = np.array([len(t) for t in texts], dtype=np.float32)
        return pooled(np.concatenate(parts), np.array(owner, dtype=np.intp), weight, laid.spans)

    async def _embed_batch(self, who: Principal, batch: list[str]) -> Vectors:
        """Rate limits are waited out (a few times): the file is not the caller's
        request, and its turn comes back."""
        for attempt in range(RATE_RETRIES):
            try:
                return (await self._embedder.embed(who, batch, INGEST)).vectors
            except RateLimitError as exc:
                if attempt == RATE_RETRIES - 1:
                    raise
                wait = float(exc.headers.get("retry-after", "1") or 1)
                await asyncio.sleep(min(max(wait, 0.5), 30.0))
        raise AssertionError("unreachable")

    async def _commit(self, row: VectorStoreFileRow, chunks: list[Chunk], vectors: Vectors) -> None:
        n = len(chunks)
        used = sum(len(c.text.encode()) for c in chunks) + int(vectors.nbytes)
        started = time.monotonic()
        async with self._db.begin() as s:
            store = VectorStoreRow
            room = await s.execute(
                update(store)
                .where(
                    store.id == row.store_id,
                    store.chunks + n <= self._settings.max_chunks_per_store,
                )
                .values(chunks=store.chunks + n, revision=store.revision + 1)
            )
            if room.rowcount != 1:
                raise ParseError("invalid_file", self._full_message(n))
            f = VectorStoreFileRow
            done = await s.execute(
                update(f)
                .where(f.id == row.id, f.status == "in_progress", f.worker == self.jobs.me)
                .values(status="completed", usage_bytes=used, chunks=n, worker=None)
            )
            if done.rowcount != 1:
                raise Stopped  # leaving the block rolls the store's count back too
            if chunks:
                await s.execute(insert(VectorChunkRow), self._chunk_rows(row, chunks, vectors))
        log.info(
            "indexed %s into %s: %d chunks in %.0f ms",
            row.file_id,
            row.store_id,
            n,
            (time.monotonic() - started) * 1000,
        )

    @staticmethod
    def _chunk_rows(
        row: VectorStoreFileRow, chunks: list[Chunk], vectors: Vectors
    ) -> list[dict[str, Any]]:
        from corral.vector_stores.vectors import to_blob

        return [
            {
                "store_id": row.store_id,
                "file_id": row.file_id,
                "seq": i,
                "text": c.text,
                "tokens": c.tokens,
                "embedding": to_blob(vectors[i]),
            }
            for i, c in enumerate(chunks)
        ]

    async def _fail(self, row_id: str, code: str, message: str) -> None:
        f = VectorStoreFileRow
        async with self._db.begin() as s:
            await s.execute(
                update(f)
                .where(f.id == row_id, f.status == "in_progress")
                .values(
                    status="failed",
                    last_error={"code": code, "message": message[:1000]},
                    worker=None,
                )
            )
