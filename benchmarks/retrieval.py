"""Vector stores: retrieval quality, ingestion speed and search latency (issue 31).

1. **Quality**: the corpus of `benchmarks/data/retrieval/` (12 short handbook pages on
   overlapping topics, written for this benchmark) is uploaded to a live corral (served
   in this process, the default process engine on the embedded model, one engine thread
   unless `CORRAL_ENGINE__N_THREADS` says otherwise) and attached to a store, so the
   product's own worker parses, chunks and embeds it. Every question of
   `questions.json` names its document and an answer string found once in the corpus;
   a question is answered at rank r when the r-th result of a search is a chunk of that
   document holding the answer (whitespace folded). Each question is searched three
   ways through `POST /v1/vector_stores/{id}/search`, the ranking chosen by the request's
   `ranking_options.hybrid_search` weights (a weight of 0 leaves that list out):
   keyword only (`text_weight` 1, `embedding_weight` 0), vectors only (0, 1), and hybrid
   (no ranking options: both, fused). recall@k: the share answered at rank k or better.
2. **Ingestion**: seconds from the store's creation to its last file `completed`;
   chunks/s over the chunks written, tokens/s over the embedding tokens metered for it
   (the model's own tokens, from the usage rows).
3. **Latency**: `vector_search.py` (synthetic chunks, an embedder that answers at once)
   at each `--chunks` size on SQLite and on PostgreSQL (skipped, with a note, when
   `--postgres` does not answer).

Writes docs/benchmarks-retrieval.md and .json, and the retrieval section of
docs/benchmarks.md (`report.retrieval_section`).

    .venv/bin/python benchmarks/retrieval.py                 # what `make bench` runs
    .venv/bin/python benchmarks/retrieval.py --chunks 10000  # a quicker latency part
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data" / "retrieval"
OUT = ROOT / "docs" / "benchmarks-retrieval.md"
MODEL = "smollm2-135m-instruct"
# The smallest chunks the API allows (100 tokens, 50 of overlap): the corpus's pages are
# ~250 words, so `auto` (800 / 400) would make each page one chunk and the benchmark a
# test of finding files. With half of each chunk shared with the next, every answer
# string lies whole in one or two chunks.
CHUNKING = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 50}}
MODES: dict[str, dict[str, Any] | None] = {
    "keyword only": {"hybrid_search": {"text_weight": 1, "embedding_weight": 0}},
    "vectors only": {"hybrid_search": {"text_weight": 0, "embedding_weight": 1}},
    "hybrid": None,  # the default: both lists, fused
}
TOP = 5


@dataclass(frozen=True)
class Question:
    question: str
    doc: str
    answer: str
    kind: str  # plain: shares words with its page; paraphrase: in other words; rare: names
    # a term that only its page has


def fold(text: str) -> str:
    return " ".join(text.split())


def corpus() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((DATA / "docs").iterdir())}


def questions() -> list[Question]:
    return [Question(**q) for q in json.loads((DATA / "questions.json").read_text())]


def rank_of(q: Question, results: list[tuple[str, str]]) -> int | None:
    """The rank (from 1) of the first result, (filename, text), that is a chunk of the
    question's document holding its answer; None if none is."""
    answer = fold(q.answer)
    for rank, (filename, text) in enumerate(results, start=1):
        if filename == q.doc and answer in fold(text):
            return rank
    return None


def recall(ranks: list[int | None], k: int) -> float:
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks) if ranks else 0.0


def check_corpus(docs: dict[str, str], qs: list[Question]) -> list[str]:
    """What is wrong with the data: an answer not found exactly once in the corpus (and
    there in its own document)."""
    problems = []
    folded = {name: fold(text) for name, text in docs.items()}
    for q in qs:
        where = {name: t.count(fold(q.answer)) for name, t in folded.items()}
        if q.doc not in docs or where.get(q.doc) != 1 or sum(where.values()) != 1:
            problems.append(f"{q.question!r}: {q.answer!r} is not once in {q.doc} alone")
    return problems


async def quality(database_url: str | None) -> dict[str, Any]:
    """Index the corpus through a live corral on ``database_url`` (None: SQLite in a
    temporary data dir), then search every question in every mode."""
    with tempfile.TemporaryDirectory(prefix="corral-retrieval-") as data:
        return await _quality(database_url, Path(data))


async def _quality(database_url: str | None, data: Path) -> dict[str, Any]:
    import httpx
    import uvicorn
    from sqlalchemy import func, select

    from corral.app import create_app
    from corral.core.config import Settings
    from corral.storage.db import Database
    from corral.storage.tables import Usage, VectorChunkRow

    docs, qs = corpus(), questions()
    settings = Settings(data_dir=data, database_url=database_url)  # no key: open mode
    config = uvicorn.Config(create_app(settings), port=0, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # uvicorn offers a flag, no event
        if task.done():
            await task  # raises what stopped it
        await asyncio.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600) as http:
            file_ids = []
            for name, text in docs.items():
                r = await http.post(
                    "/v1/files",
                    files={"file": (name, text.encode(), "text/markdown")},
                    data={"purpose": "assistants"},
                )
                r.raise_for_status()
                file_ids.append(r.json()["id"])
            # The model loads on the first request that needs it: one embedding first,
            # so the indexing time is the indexing.
            r = await http.post("/v1/embeddings", json={"model": MODEL, "input": "warm up"})
            r.raise_for_status()
            started = time.perf_counter()
            r = await http.post(
                "/v1/vector_stores",
                json={"name": "retrieval", "file_ids": file_ids, "chunking_strategy": CHUNKING},
            )
            r.raise_for_status()
            store = r.json()
            while store["file_counts"]["in_progress"]:
                await asyncio.sleep(0.1)
                store = (await http.get(f"/v1/vector_stores/{store['id']}")).json()
            indexed_s = time.perf_counter() - started
            if store["file_counts"]["completed"] != len(docs):
                raise RuntimeError(f"indexing failed: {store['file_counts']}")
            db = Database(settings.db_url)
            async with db.session() as s:
                chunks = await s.scalar(
                    select(func.count()).where(VectorChunkRow.store_id == store["id"])
                )
                tokens = await s.scalar(
                    select(func.sum(Usage.prompt_tokens)).where(Usage.endpoint == "vector_stores")
                )
            await db.close()
            modes: dict[str, Any] = {}
            for mode, ranking in MODES.items():
                ranks: list[int | None] = []
                times: list[float] = []
                for q in qs:
                    body: dict[str, Any] = {"query": q.question, "max_num_results": TOP}
                    if ranking is not None:
                        body["ranking_options"] = ranking
                    t = time.perf_counter()
                    r = await http.post(f"/v1/vector_stores/{store['id']}/search", json=body)
                    times.append((time.perf_counter() - t) * 1000)
                    r.raise_for_status()
                    hits = [(h["filename"], h["content"][0]["text"]) for h in r.json()["data"]]
                    ranks.append(rank_of(q, hits))
                modes[mode] = {
                    "ranks": ranks,
                    "search_p50_ms": round(statistics.median(times), 1),
                    "search_max_ms": round(max(times), 1),
                }
    finally:
        server.should_exit = True
        await task
    return {
        "database": "SQLite" if database_url is None else "PostgreSQL",
        "documents": len(docs),
        "questions": len(qs),
        "chunks": chunks,
        "embedding_tokens": tokens or 0,  # none if the usage rows were not written
        "indexed_s": round(indexed_s, 2),
        "modes": modes,
    }


def postgres_down(admin_url: str) -> str | None:
    """Why the PostgreSQL server of ``admin_url`` cannot be used; None if it answers."""
    try:
        import psycopg

        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure means: no PostgreSQL here
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def recreate_postgres(admin_url: str, drop_only: bool = False) -> str:
    """The URL of a database made afresh for this run on the server of ``admin_url``."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "corral_retrieval" WITH (FORCE)')
        if not drop_only:
            conn.execute('CREATE DATABASE "corral_retrieval"')
    return f"{admin_url.rsplit('/', 1)[0]}/corral_retrieval"


def summary(run: dict[str, Any], qs: list[Question]) -> dict[str, dict[str, float]]:
    """recall@1 and @5 of each mode, overall and per kind of question."""
    out: dict[str, dict[str, float]] = {}
    for mode, m in run["modes"].items():
        ranks = m["ranks"]
        row = {"recall@1": recall(ranks, 1), f"recall@{TOP}": recall(ranks, TOP)}
        for kind in sorted({q.kind for q in qs}):
            mine = [r for r, q in zip(ranks, qs, strict=True) if q.kind == kind]
            row[f"{kind} recall@{TOP}"] = recall(mine, TOP)
        out[mode] = row
    return out


def markdown(result: dict[str, Any]) -> str:
    import vector_search

    qs = questions()
    kinds = {k: sum(1 for q in qs if q.kind == k) for k in sorted({q.kind for q in qs})}
    out = [
        "# Vector stores: retrieval benchmark",
        "",
        f"Written by `python benchmarks/retrieval.py` (part of `make bench`) on "
        f"{result['when']}; do not edit by hand. Raw numbers: "
        "[benchmarks-retrieval.json](benchmarks-retrieval.json).",
        "",
        f"- Machine: {result['machine']}",
        f"- Model: `{MODEL}` (SmolLM2-135M-Instruct, a chat model, in embedding mode), "
        f"{result['threads']} engine thread{'s' * (result['threads'] > 1)}, corral's default "
        "process engine",
        f"- Corpus: `benchmarks/data/retrieval/`, {len(corpus())} handbook pages (travel, "
        "leave, IT, security, payroll, the building …, written for this benchmark), "
        f"chunked by the product at {CHUNKING['static']['max_chunk_size_tokens']} tokens "
        f"with {CHUNKING['static']['chunk_overlap_tokens']} of overlap (the smallest chunks "
        "the API takes; `auto` would make each page one chunk)",
        f"- Questions: {len(qs)}, each naming its page and an answer string found once in "
        f"the corpus ({', '.join(f'{n} {k}' for k, n in kinds.items())}: *plain* shares "
        "words with its page, *paraphrase* says it in other words, *rare* names a term "
        "only its page has)",
        "",
        "## Retrieval quality",
        "",
        "Each question searched through `POST /v1/vector_stores/{id}/search` with "
        f"`max_num_results: {TOP}`; a hit is a result that is a chunk of the question's page "
        "holding the answer. The mode is the request's `ranking_options.hybrid_search`: "
        "keyword only is `text_weight` 1 / `embedding_weight` 0, vectors only the reverse, "
        "hybrid the default (both lists, reciprocal rank fusion).",
        "",
    ]
    for run in result["quality"]:
        s = summary(run, qs)
        out += [
            f"### {run['database']}: {run['chunks']} chunks",
            "",
            f"| mode | recall@1 | recall@{TOP} | "
            + " | ".join(f"{k} recall@{TOP}" for k in kinds)
            + " | search p50 ms |",
            "| --- | ---: | ---: | " + " | ".join("---:" for _ in kinds) + " | ---: |",
        ]
        for mode, row in s.items():
            n = run["questions"]
            r1, r5 = row["recall@1"], row[f"recall@{TOP}"]
            cells = [f"{r1:.2f} ({round(r1 * n)}/{n})", f"{r5:.2f} ({round(r5 * n)}/{n})"]
            cells += [
                f"{row[f'{k} recall@{TOP}']:.2f} ({round(row[f'{k} recall@{TOP}'] * c)}/{c})"
                for k, c in kinds.items()
            ]
            cells.append(f"{run['modes'][mode]['search_p50_ms']:.0f}")
            out.append(f"| {mode} | " + " | ".join(cells) + " |")
        out.append("")
    short = {"keyword only": "kw", "vectors only": "vec", "hybrid": "hyb"}
    runs = result["quality"]
    out += [
        "Each question's rank of the chunk holding its answer (- : not in the top "
        f"{TOP}; kw / vec / hyb: keyword only, vectors only, hybrid):",
        "",
        "| question | kind | page | "
        + " | ".join(f"{run['database']} {short[m]}" for run in runs for m in MODES)
        + " |",
        "| --- | --- | --- | " + " | ".join("---:" for _ in runs for _ in MODES) + " |",
    ]
    for i, q in enumerate(qs):
        ranks = [run["modes"][m]["ranks"][i] for run in runs for m in MODES]
        cells = " | ".join("-" if r is None else str(r) for r in ranks)
        out.append(f"| {q.question} | {q.kind} | {q.doc} | {cells} |")
    out += [
        "",
        "## Ingestion",
        "",
        "The corpus attached to a new store in one request; from then until its last file "
        "is `completed` (parsed, chunked, embedded, written by the worker). Tokens: the "
        "embedding model's, as metered for the indexing (each token once: overlapping "
        "chunks share their embedded units).",
        "",
        "| database | files | chunks | embedding tokens | seconds | chunks/s | tokens/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in result["quality"]:
        s_ = run["indexed_s"]
        out.append(
            f"| {run['database']} | {run['documents']} | {run['chunks']} | "
            f"{run['embedding_tokens']:,} | {s_:.1f} | {run['chunks'] / s_:.2f} | "
            f"{run['embedding_tokens'] / s_:.0f} |"
        )
    out += [
        "",
        "## Search latency at "
        + " and ".join(f"{n:,}" for n in sorted({m["chunks"] for m in result["latency"]}))
        + " chunks",
        "",
        "`benchmarks/vector_search.py`: one store of synthetic chunks (100 words from a "
        "5,000-word vocabulary, random 576-dimensional unit vectors: the embedded model's "
        "size, 100 files) written straight into the tables, searched through corral's "
        f"`Searcher` with an embedder that answers at once ({vector_search.SEARCHES} "
        "searches of 4 words each, hybrid, and as many with an attribute filter; p99 by "
        "nearest rank): corral's own part of a search, without the query's embedding "
        "(on the embedded model, the rest of the vector and hybrid search p50s above). The "
        "first search of a store reads its whole matrix; later ones use the cached one.",
        "",
        vector_search.HEADER,
        *(vector_search.row(m) for m in result["latency"]),
        "",
    ]
    out += [f"{note}" for note in result["notes"]]
    return "\n".join(out).rstrip() + "\n"


def one_thread() -> None:
    """One engine thread and one BLAS thread unless told otherwise (set before numpy is
    imported): the numbers are for a small shared box."""
    os.environ.setdefault("CORRAL_ENGINE__N_THREADS", "1")
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


async def main() -> int:
    one_thread()
    import vector_search

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--chunks",
        type=int,
        nargs="+",
        default=[10_000, 100_000],
        help="store sizes of the latency part (100,000 takes ~1 minute per database)",
    )
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgresql"], help="latency part")
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a server's URL (trust auth); databases are made there and dropped",
    )
    parser.add_argument(
        "--quality-db",
        nargs="+",
        default=["sqlite", "postgresql"],
        help="databases the quality and ingestion part runs on (each indexes the corpus)",
    )
    parser.add_argument(
        "--out", type=Path, default=OUT, help="elsewhere: docs/benchmarks.md is left alone"
    )
    parser.add_argument(
        "--render", action="store_true", help="rewrite the pages from --out's .json; run nothing"
    )
    args = parser.parse_args()
    if args.render:
        result = json.loads(args.out.with_suffix(".json").read_text())
        write(args.out, result)
        return 0
    problems = check_corpus(corpus(), questions())
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    began = time.perf_counter()
    notes: list[str] = []
    down = postgres_down(args.postgres) if "postgresql" in args.db + args.quality_db else None
    if down is not None:
        notes.append(f"PostgreSQL ({args.postgres}) did not answer ({down}): its runs skipped.")
        print(notes[-1], file=sys.stderr)
    runs = []
    for kind in args.quality_db:
        if kind == "sqlite":
            runs.append(await quality(None))
        elif down is None:
            try:
                runs.append(await quality(recreate_postgres(args.postgres)))
            finally:
                recreate_postgres(args.postgres, drop_only=True)
        else:
            continue
        print(json.dumps({k: v for k, v in runs[-1].items() if k != "modes"}), flush=True)
    latency = []
    for kind in args.db:
        for n in args.chunks:
            if kind == "sqlite":
                latency.append(await vector_search.measure_sqlite(n))
            elif down is None:
                latency.append(await vector_search.measure_postgres(args.postgres, n))
            else:
                continue
            print(vector_search.row(latency[-1]), flush=True)
    took = time.perf_counter() - began
    notes.append(f"The whole run took {took / 60:.1f} minutes.")
    result = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "threads": int(os.environ["CORRAL_ENGINE__N_THREADS"]),
        "quality": runs,
        "summary": {run["database"]: summary(run, questions()) for run in runs},
        "latency": latency,
        "notes": notes,
        "took_s": round(took),
    }
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    print(write(args.out, result))
    return 0


def write(out: Path, result: dict[str, Any]) -> str:
    """The page at ``out`` and, for the default one, docs/benchmarks.md's section."""
    import report

    page = markdown(result)
    out.write_text(page)
    if out.resolve() == OUT:
        report.update_retrieval_section(ROOT / "docs" / "benchmarks.md", result)
    return page


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
