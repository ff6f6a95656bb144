"""Search latency of one vector store at N chunks, on SQLite and PostgreSQL.

Synthetic chunks (100 words from a 5,000-word vocabulary, a random 576-dimensional unit
vector: the embedded model's size) are written straight into the tables, then searches
run through corral's `Searcher` with an embedder that answers at once, so the numbers
are corral's own: keyword (FTS5 / tsvector), the vector matrix (read once per store
revision, then cached), and the fusion.

    .venv/bin/python benchmarks/vector_search.py --chunks 10000 100000 --db sqlite postgresql
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

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
SEARCHES = 30


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
    return sorted(values)[min(len(values) - 1, int(p * len(values)))]


async def bench(url: str, n: int) -> str:
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
    await db.close()
    return (
        f"| {db.engine.dialect.name} | {n:,} | {filled:.0f} s | {cold * 1000:.0f} ms | "
        f"{statistics.median(times):.1f} / {pct(times, 0.99):.1f} ms | "
        f"{statistics.median(filtered):.1f} / {pct(filtered, 0.99):.1f} ms |"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, nargs="+", default=[10_000])
    parser.add_argument("--db", nargs="+", default=["sqlite"])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    print(
        "| database | chunks | written in | first search (reads the matrix) "
        "| search p50 / p99 | with a filter (1/4 of files) p50 / p99 |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for kind in args.db:
        for n in args.chunks:
            if kind == "sqlite":
                with tempfile.TemporaryDirectory() as tmp:
                    print(await bench(f"sqlite:///{Path(tmp) / 'bench.db'}", n), flush=True)
            else:
                print(await bench_postgres(args.postgres, n), flush=True)


async def bench_postgres(admin_url: str, n: int) -> str:
    import psycopg

    name = f"corral_bench_{n}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        return await bench(f"{admin_url.rsplit('/', 1)[0]}/{name}", n)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
