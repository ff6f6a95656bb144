"""Exact vector search over a store's chunks with numpy: one matrix product.

``sqlite-vec`` installs from PyPI, but Python's ``sqlite3`` module here is built without
loadable extensions (``enable_load_extension`` is missing), and the PostgreSQL servers we
run on have no ``pgvector``. So each store's vectors are read into one float32 matrix
(bounded by ``max_chunks_per_store``), kept in memory under a byte budget, and searched
by a matrix-vector product and a partial sort — no Python loop over chunks. A matrix is
keyed by the store's ``revision``, which every change of its chunks bumps in the same
transaction, so a replica never searches stale vectors. A new revision that only added
chunks (a file indexed) reads just those and appends them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import select, text

from corral.storage.db import Database
from corral.storage.tables import VectorChunkRow

Vectors = npt.NDArray[np.float32]
DTYPE = np.dtype("<f4")


def unit_rows(m: Vectors) -> Vectors:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return (m / np.where(norms == 0, 1, norms)).astype(np.float32)


def pooled(
    vectors: Vectors,
    owner: npt.NDArray[np.intp],
    weight: Vectors,
    spans: list[tuple[int, int]],
) -> Vectors:
    """Row ``i`` of the result: the weighted mean of the rows of ``vectors`` (pieces,
    weighted by their length) whose ``owner`` (a unit) lies in ``spans[i]``, made unit
    length again. The model mean-pools over tokens, so pooling the vectors of a chunk's
    pieces stays close to what one long input would have given, with no input past its
    window. One cumulative sum over the units makes every chunk a difference of two rows."""
    n_units = max(end for _, end in spans)
    units = np.zeros((n_units, vectors.shape[1]), dtype=np.float64)
    np.add.at(units, owner, vectors * weight[:, None])
    cumulative = np.vstack([np.zeros((1, vectors.shape[1])), np.cumsum(units, axis=0)])
    starts = np.array([s for s, _ in spans], dtype=np.intp)
    ends = np.array([e for _, e in spans], dtype=np.intp)
    return unit_rows((cumulative[ends] - cumulative[starts]).astype(np.float32))


def to_blob(vector: Vectors) -> bytes:
    return np.ascontiguousarray(vector, dtype=DTYPE).tobytes()


@dataclass(frozen=True)
class Matrix:
    """A store's vectors at one revision: row ``i`` is chunk ``ids[i]`` of file
    ``files[codes[i]]``."""

    revision: int
    ids: npt.NDArray[np.int64]
    codes: npt.NDArray[np.int32]
    files: tuple[str, ...]
    vectors: Vectors

    @property
    def nbytes(self) -> int:
        return int(self.vectors.nbytes + self.ids.nbytes + self.codes.nbytes)

    def top(
        self, query: Vectors, k: int, allowed: frozenset[str] | None
    ) -> list[tuple[int, float]]:
        """The ``k`` chunks nearest ``query`` (unit length), by cosine, best first;
        ``allowed``: only chunks of these files."""
        if len(self.ids) == 0:
            return []
        scores = self.vectors @ query
        if allowed is not None:
            keep = np.array([f in allowed for f in self.files], dtype=bool)  # per file
            scores = np.where(keep[self.codes], scores, -np.inf)
        k = min(k, len(scores))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best])]
        return [(int(self.ids[i]), float(scores[i])) for i in best if np.isfinite(scores[i])]


async def load(db: Database, store_id: str, revision: int) -> Matrix:
    query = (
        select(VectorChunkRow.id, VectorChunkRow.file_id, VectorChunkRow.embedding)
        .where(VectorChunkRow.store_id == store_id)
        .order_by(VectorChunkRow.id)
    )
    async with db.session() as s:
        rows = (await s.execute(query)).all()
    if not rows:
        return Matrix(revision, np.zeros(0, np.int64), np.zeros(0, np.int32), (), _empty())
    ids, file_ids, blobs = zip(*rows, strict=True)
    files, codes = np.unique(np.array(file_ids), return_inverse=True)
    flat = np.frombuffer(b"".join(blobs), dtype=DTYPE)
    vectors = flat.reshape(len(rows), -1).astype(np.float32)
    return Matrix(
        revision,
        np.array(ids, dtype=np.int64),
        codes.astype(np.int32),
        tuple(str(f) for f in files),
        vectors,
    )


def _empty() -> Vectors:
    return np.zeros((0, 0), dtype=np.float32)


# The store's chunk count and id sum, and its chunks past the held ones, in one statement
# (one snapshot on both databases).
SINCE = text(
    "SELECT t.n, t.s, c.id, c.file_id, c.embedding FROM "
    "(SELECT count(*) AS n, coalesce(sum(id), 0) AS s FROM vector_chunks "
    "WHERE store_id = :store) t "
    "LEFT JOIN vector_chunks c ON c.store_id = :store AND c.id > :after ORDER BY c.id"
)


async def grown(db: Database, held: Matrix, store_id: str, revision: int) -> Matrix | None:
    """``held`` with the chunks added to the store since it was read, or None when that
    is not all that changed (chunks removed, or added with lower ids than held ones: a
    transaction that committed late): then the whole matrix is read again. Chunks are
    only ever added or removed, never changed, so the count and the sum of the ids tell."""
    if not len(held.ids):
        return None
    params = {"store": store_id, "after": int(held.ids[-1])}
    async with db.session() as s:
        rows = (await s.execute(SINCE, params)).all()
    count, id_sum = int(rows[0][0]), int(rows[0][1])
    new = [r[2:] for r in rows if r[2] is not None]
    added = sum(int(r[0]) for r in new)
    if not new or count != len(held.ids) + len(new) or id_sum != int(held.ids.sum()) + added:
        return None
    ids, file_ids, blobs = zip(*new, strict=True)
    fresh = np.frombuffer(b"".join(blobs), dtype=DTYPE).reshape(len(new), -1)
    before = np.array(held.files)
    files = np.unique(np.concatenate([before, np.array(file_ids)]))
    codes = np.concatenate(
        [np.searchsorted(files, before)[held.codes], np.searchsorted(files, np.array(file_ids))]
    )
    return Matrix(
        revision,
        np.concatenate([held.ids, np.array(ids, dtype=np.int64)]),
        codes.astype(np.int32),
        tuple(str(f) for f in files),
        np.concatenate([held.vectors, fresh.astype(np.float32)]),
    )


class MatrixCache:
    """Stores' matrices, least recently used dropped first past ``budget`` bytes."""

    def __init__(self, db: Database, budget: int) -> None:
        self._db = db
        self._budget = budget
        self._held: OrderedDict[str, Matrix] = OrderedDict()

    async def get(self, store_id: str, revision: int) -> Matrix:
        held = self._held.get(store_id)
        if held is not None and held.revision == revision:
            self._held.move_to_end(store_id)
            return held
        matrix = await grown(self._db, held, store_id, revision) if held is not None else None
        if matrix is None:
            matrix = await load(self._db, store_id, revision)
        self._held.pop(store_id, None)
        if matrix.nbytes <= self._budget:
            self._held[store_id] = matrix
            while sum(m.nbytes for m in self._held.values()) > self._budget:
                self._held.popitem(last=False)
        return matrix

    def forget(self, store_id: str) -> None:
        self._held.pop(store_id, None)
