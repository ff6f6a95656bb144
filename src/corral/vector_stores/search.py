"""Hybrid search over one store: keyword (FTS5 / tsvector) and vectors (the embedding
model's), fused by reciprocal rank fusion.

Each query of a search gives two ranked lists of chunks (keyword, vector), each cut at
``candidates``. A chunk's fused score is the sum over the lists it is in of
``weight / (k + rank)`` (rank from 1), divided by the most any chunk could get (first in
every list), so scores lie in [0, 1] like OpenAI's and ``score_threshold`` means the
same on any store: 1.0 is a chunk that came first everywhere.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from corral.accounts.keys import Principal
from corral.core.config import VectorStoreSettings
from corral.core.errors import InvalidRequestError
from corral.protocol.vector_stores import SearchRequest, SearchResult, TextContent
from corral.storage.db import Database
from corral.storage.tables import VectorChunkRow, VectorStoreFileRow, VectorStoreRow
from corral.vector_stores.embedder import SEARCH, Embedder
from corral.vector_stores.filters import check_filter, matches
from corral.vector_stores.keyword import keyword_search

if TYPE_CHECKING:
    from corral.vector_stores.vectors import MatrixCache, Vectors


@dataclass(frozen=True)
class Weights:
    text: float = 1.0
    vector: float = 1.0


@dataclass(frozen=True)
class SearchFile:
    filename: str
    attributes: dict[str, Any] | None


def check_queries(req: SearchRequest, settings: VectorStoreSettings) -> list[str]:
    queries = req.queries()
    if not queries or len(queries) > settings.max_queries:
        raise InvalidRequestError(
            f"`query` must be a string or a list of 1 to {settings.max_queries} strings.",
            param="query",
        )
    for q in queries:
        if not q.strip():
            raise InvalidRequestError("`query` must not be empty.", param="query")
        if len(q) > settings.max_query_chars:
            raise InvalidRequestError(
                f"A query is at most {settings.max_query_chars} characters.", param="query"
            )
    if req.filters is not None:
        check_filter(req.filters)
    return queries


def fuse(lists: list[tuple[list[int], float]], k: int) -> dict[int, float]:
    """Reciprocal rank fusion of ranked lists of chunk ids (each with its weight),
    normalised to [0, 1]."""
    scores: dict[int, float] = defaultdict(float)
    for ids, weight in lists:
        for rank, chunk_id in enumerate(ids, start=1):
            scores[chunk_id] += weight / (k + rank)
    best = sum(weight for _, weight in lists) / (k + 1)
    return {c: s / best for c, s in scores.items()} if best > 0 else {}


class Searcher:
    def __init__(self, db: Database, embedder: Embedder, settings: VectorStoreSettings) -> None:
        self._db = db
        self._embedder = embedder
        self._settings = settings
        self._held: MatrixCache | None = None

    @property
    def _cache(self) -> MatrixCache:
        if self._held is None:
            from corral.vector_stores.vectors import MatrixCache  # numpy: on first use

            self._held = MatrixCache(self._db, self._settings.cache_mib * 1024 * 1024)
        return self._held

    async def search(
        self, who: Principal, stores: list[VectorStoreRow], req: SearchRequest
    ) -> list[SearchResult]:
        """The best chunks of ``stores`` for ``req`` (its queries checked by
        ``check_queries``), best first. Each store's lists are fused on their own (a score
        is a chunk's place in its store), then the stores' chunks merged by score; the
        queries are embedded once, and only if some store has vectors."""
        options = req.ranking_options
        hybrid = options.hybrid_search if options else None
        weights = Weights(hybrid.text_weight, hybrid.embedding_weight) if hybrid else Weights()
        threshold = options.score_threshold if options else 0.0
        queries = _Queries(self._embedder, who, req.queries())
        files: dict[str, dict[str, SearchFile]] = {}
        scored: list[tuple[int, float]] = []
        for store in stores:
            files[store.id] = await self._files(store.id)
            allowed = (
                None
                if req.filters is None
                else frozenset(
                    f for f, v in files[store.id].items() if matches(req.filters, v.attributes)
                )
            )
            if not files[store.id] or allowed == frozenset():
                continue
            lists = await self._ranked(store, queries, allowed, weights)
            fused = fuse(lists, self._settings.rrf_k)
            scored += [(c, score) for c, score in fused.items() if score >= threshold]
        chosen = sorted(scored, key=lambda cs: (-cs[1], cs[0]))[: req.max_num_results]
        return await self._results(chosen, files)

    async def _ranked(
        self,
        store: VectorStoreRow,
        queries: _Queries,
        allowed: frozenset[str] | None,
        weights: Weights,
    ) -> list[tuple[list[int], float]]:
        n = self._settings.candidates
        lists: list[tuple[list[int], float]] = []
        if weights.text > 0:
            only = sorted(allowed) if allowed is not None else None
            for q in queries.texts:
                lists.append((await keyword_search(self._db, store.id, q, n, only), weights.text))
        if weights.vector > 0:
            matrix = await self._cache.get(store.id, store.revision)
            if len(matrix.ids):
                for vector in await queries.vectors():
                    top = matrix.top(vector, n, allowed)
                    lists.append(([c for c, _ in top], weights.vector))
        return lists

    async def _files(self, store_id: str) -> dict[str, SearchFile]:
        """The store's searchable (completed) files."""
        f = VectorStoreFileRow
        query = select(f.file_id, f.filename, f.attributes).where(
            f.store_id == store_id, f.status == "completed"
        )
        async with self._db.session() as s:
            rows = (await s.execute(query)).all()
        return {file_id: SearchFile(name, attrs) for file_id, name, attrs in rows}

    async def _results(
        self, chosen: list[tuple[int, float]], files: dict[str, dict[str, SearchFile]]
    ) -> list[SearchResult]:
        if not chosen:
            return []
        c = VectorChunkRow
        query = select(c.id, c.store_id, c.file_id, c.text).where(
            c.id.in_([cid for cid, _ in chosen])
        )
        async with self._db.session() as s:
            found = {row[0]: row[1:] for row in (await s.execute(query)).all()}
        results = []
        for chunk_id, score in chosen:
            if chunk_id not in found:
                continue  # removed since it was ranked
            store_id, file_id, text = found[chunk_id]
            meta = files.get(store_id, {}).get(file_id)
            if meta is None:
                continue
            results.append(
                SearchResult(
                    file_id=file_id,
                    filename=meta.filename,
                    score=round(score, 6),
                    attributes=meta.attributes,
                    content=[TextContent(text=text)],
                )
            )
        return results

    def forget(self, store_id: str) -> None:
        if self._held is not None:
            self._held.forget(store_id)


class _Queries:
    """A search's queries, embedded (metered) on first use only."""

    def __init__(self, embedder: Embedder, who: Principal, texts: list[str]) -> None:
        self._embedder = embedder
        self._who = who
        self.texts = texts
        self._vectors: Vectors | None = None

    async def vectors(self) -> Vectors:
        if self._vectors is None:
            self._vectors = (await self._embedder.embed(self._who, self.texts, SEARCH)).vectors
        return self._vectors
