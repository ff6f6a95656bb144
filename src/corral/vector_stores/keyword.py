"""Keyword search over a store's chunks: SQLite FTS5 (BM25) or PostgreSQL full-text
search (``ts_rank_cd`` over a generated ``tsvector`` with a GIN index). Both stem English
(porter; the ``english`` configuration) and match any of the query's words.

The query is never handed to either parser as written: its words (letters and digits)
are taken out and joined with OR, so no user text is FTS syntax."""

from __future__ import annotations

import re

from sqlalchemy import bindparam, text

from corral.storage.db import Database

WORD = re.compile(r"\w+", re.UNICODE)
MAX_WORDS = 64
# Left out of queries on both databases (PostgreSQL's `english` configuration drops them
# anyway; FTS5 has no stop list): fusion looks at ranks only, and a question's "how do I"
# would otherwise rank every chunk that has those words.
STOP_WORDS = frozenset(
    """a about above after again all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers him his how i if in into is it its me
    more most my no nor not of off on once only or other our ours out over own same she
    should so some such than that the their them then there these they this those through
    to too under until up very was we were what when where which while who whom why will
    with would you your yours get got""".split()
)

SQLITE = """
SELECT c.id FROM vector_chunks_fts f JOIN vector_chunks c ON c.id = f.rowid
WHERE vector_chunks_fts MATCH :match AND c.store_id = :store {files}
ORDER BY bm25(vector_chunks_fts) LIMIT :n
"""
POSTGRES = """
SELECT c.id FROM vector_chunks c, websearch_to_tsquery('english', :match) q
WHERE c.store_id = :store AND c.tsv @@ q {files}
ORDER BY ts_rank_cd(c.tsv, q) DESC, c.id LIMIT :n
"""


def words(query: str) -> list[str]:
    seen: dict[str, None] = {}
    for w in WORD.findall(query.lower()):
        if w not in STOP_WORDS:
            seen.setdefault(w.replace("_", " ").strip(), None)
    return [w for w in seen if w][:MAX_WORDS]


def match_expression(query: str, sqlite: bool) -> str | None:
    found = words(query)
    if not found:
        return None
    if sqlite:
        return " OR ".join(f'"{w}"' for w in found)  # quoted: a word, never an operator
    return " or ".join(found)


async def keyword_search(
    db: Database, store_id: str, query: str, n: int, files: list[str] | None
) -> list[int]:
    """Up to ``n`` chunk ids of the store, best match first; ``files``: only chunks of
    these files."""
    match = match_expression(query, db.is_sqlite)
    if match is None or files == []:
        return []
    sql = SQLITE if db.is_sqlite else POSTGRES
    statement = text(sql.format(files="AND c.file_id IN :files" if files is not None else ""))
    params: dict[str, object] = {"match": match, "store": store_id, "n": n}
    if files is not None:
        statement = statement.bindparams(bindparam("files", expanding=True))
        params["files"] = files
    async with db.session() as s:
        return [int(r[0]) for r in await s.execute(statement, params)]
