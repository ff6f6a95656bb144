"""Search latency of one vector store at N chunks, on SQLite and PostgreSQL.

Synthetic chunks (100 words from a 5,000-word vocabulary, a random 576-dimensional unit
vector: the embedded model's size) are written straight into the tables, then searches
run through corral's `Searcher` with an embedder that answers at once, so the numbers
are corral's own: keyword (FTS5 / tsvector), the vector matrix (read once per store
revision, then cached), and the fusion.

    .venv/bin/python benchmarks/vector_search.py --chunks 10000 100000 --db sqlite postgresql

`benchmarks/retrieval.py` (part of `make bench`) runs it too and writes the table to
docs/benchmarks-retrieval.md.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert, text

from corral.accounts.keys import ANONYMOUS, Principal
from corral.core.clock import now
from corral.core.config import VectorStoreSettings
from corral.protocol.vector_stores import SearchRequest
from corral.storage.db import Database, upgrade
from corral.storage.tables import VectorChunkRow, VectorStoreFileRow, VectorStoreRow
from corral.vector_stores.embedder import Embedded
from corral.vector_stores.search import Searcher
from corral.vector_stores.vectors import to_blob, unit_rows

DIMS = 576
FILES = 100
WORDS = 100
SEARCHES = 100  # of each kind per store


class InstantEmbedder:
    def __init__(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def piece_bytes(self) -> int:
        return 510

    async def embed(self, who: Principal, texts: list[str], endpoint: str) -> Embedded:
        m = self._rng.standard_normal((len(texts), DIMS)).astype(np.float32)
        return Embedded(unit_rows(m), len(texts))


def vocabulary(rng: np.random.Generator) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return ["".join(rng.choice(letters, size=rng.integers(3, 10))) for _ in range(5000)]


async def fill(db: Database, n: int, rng: np.random.Generator) -> VectorStoreRow:
    moment = now()
    store = VectorStoreRow(
        id=f"vs_bench_{n}",
        scope="-",
        name="bench",
        last_active_at=moment,
        created_at=moment,
        chunks=n,
        revision=1,
    )
    async with db.begin() as s:
        s.add(store)
        await s.flush()  # the store's row before the rows that point at it
        for f in range(FILES):
            s.add(
                VectorStoreFileRow(
                    id=f"vsf_{n}_{f}",
                    store_id=store.id,
                    file_id=f"file-{f}",
                    filename=f"{f}.txt",
                    bytes=0,
                    status="completed",
                    chunking={},
                    usage_bytes=0,
                    chunks=n // FILES,
                    principal={},
                    created_at=moment,
                    attributes={"group": f % 4},
                )
            )
    words = np.array(vocabulary(rng))
    step = 2000
    for start in range(0, n, step):
        count = min(step, n - start)
        texts = [" ".join(rng.choice(words, size=WORDS)) for _ in range(count)]
        vectors = unit_rows(rng.standard_normal((count, DIMS)).astype(np.float32))
        rows = [
            {
                "store_id": store.id,
                "file_id": f"file-{(start + i) % FILES}",
                "seq": start + i,
                "text": t,
                "tokens": WORDS,
                "embedding": to_blob(vectors[i]),
            }
            for i, t in enumerate(texts)
        ]
        async with db.begin() as s:
            await s.execute(insert(VectorChunkRow), rows)
    if not db.is_sqlite:  # what autovacuum does soon after a bulk load
        async with db.begin() as s:
            await s.execute(text("ANALYZE vector_chunks"))
    return store


def pct(values: list[float], p: float) -> float:
    """The nearest-rank percentile: p99 of 100 values is the 99th smallest."""
    return sorted(values)[max(0, math.ceil(p * len(values)) - 1)]


async def measure(url: str, n: int) -> dict[str, Any]:
    """One store of ``n`` chunks at ``url``: seconds to write it, the first search (reads
    the matrix), then p50 / p99 of SEARCHES searches with and without a filter (ms)."""
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    rng = np.random.default_rng(n)
    started = time.perf_counter()
    store = await fill(db, n, rng)
    filled = time.perf_counter() - started
    searcher = Searcher(db, InstantEmbedder(1), VectorStoreSettings())
    words = vocabulary(np.random.default_rng(n))  # the same vocabulary
    first = time.perf_counter()
    await searcher.search(ANONYMOUS, [store], SearchRequest(query="warm up"))
    cold = time.perf_counter() - first
    times, filtered = [], []
    for i in range(SEARCHES):
        query = " ".join(words[(i * 7 + j) % len(words)] for j in range(4))
        t = time.perf_counter()
        await searcher.search(ANONYMOUS, [store], SearchRequest(query=query))
        times.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        request = SearchRequest.model_validate(
            {"query": query, "filters": {"type": "eq", "key": "group", "value": 1}}
        )
        await searcher.search(ANONYMOUS, [store], request)
        filtered.append((time.perf_counter() - t) * 1000)
    dialect = db.engine.dialect.name
    await db.close()
    return {
        "database": {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(dialect, dialect),
        "chunks": n,
        "written_s": round(filled, 1),
        "first_ms": round(cold * 1000, 1),
        "p50_ms": round(statistics.median(times), 1),
        "p99_ms": round(pct(times, 0.99), 1),
        "filtered_p50_ms": round(statistics.median(filtered), 1),
        "filtered_p99_ms": round(pct(filtered, 0.99), 1),
    }


HEADER = (
    "| database | chunks | written in | first search (reads the matrix) "
    "| search p50 / p99 | with a filter (1/4 of files) p50 / p99 |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: |"
)


def row(m: dict[str, Any]) -> str:
    return (
        f"| {m['database']} | {m['chunks']:,} | {m['written_s']:.0f} s | {m['first_ms']:,.0f} ms "
        f"| {m['p50_ms']:.1f} / {m['p99_ms']:.1f} ms "
        f"| {m['filtered_p50_ms']:.1f} / {m['filtered_p99_ms']:.1f} ms |"
    )


async def measure_postgres(admin_url: str, n: int) -> dict[str, Any]:
    """``measure`` in a database made for the run (and dropped after it) on the server
    of ``admin_url``."""
    import psycopg

    name = f"corral_bench_{n}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        return await measure(f"{admin_url.rsplit('/', 1)[0]}/{name}", n)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def measure_sqlite(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        return await measure(f"sqlite:///{Path(tmp) / 'bench.db'}", n)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, nargs="+", default=[10_000])
    parser.add_argument("--db", nargs="+", default=["sqlite"])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    print(HEADER)
    for kind in args.db:
        for n in args.chunks:
            if kind == "sqlite":
                print(row(await measure_sqlite(n)), flush=True)
            else:
                print(row(await measure_postgres(args.postgres, n)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
