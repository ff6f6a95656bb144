"""One-row reads of a SQLite file in place, on the caller's thread, without SQLAlchemy's
execution layer.

The API reads the caller's key on every request, before the first token. Through a
SQLAlchemy ``Connection`` that read cost 0.72 ms here between requests (pool checkout,
execution context, result metadata, row processing, all run cold on an idle CPU); the
same statement on a plain ``sqlite3`` connection cost 0.14 ms. So the statement is still
written and compiled with SQLAlchemy, once, and its columns' own type processors turn
the row into Python values (dates, JSON, booleans); only the execution is ``sqlite3``'s.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, Select


@dataclass(frozen=True)
class _Plan:
    sql: str
    params: Sequence[tuple[str, Callable[[Any], Any] | None]]  # name, bind processor
    processors: Sequence[Callable[[Any], Any] | None]
    row: type[tuple[Any, ...]]


class SQLiteReader:
    """Reads committed data at once: autocommit, so each read is its own snapshot.

    ``busy_ms`` bounds a wait for a locked file (rare under WAL); past it, ``first``
    raises ``sqlite3.OperationalError`` and the caller takes its slow path.
    """

    def __init__(self, path: str, dialect: Dialect, busy_ms: int = 50) -> None:
        self._path, self._dialect, self._busy_s = path, dialect, busy_ms / 1000
        self._conn: sqlite3.Connection | None = None
        self._plans: dict[int, tuple[Select[Any], _Plan]] = {}

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # check_same_thread off: the API calls this from its event loop only, but a
            # reader made on one thread and closed on another must not raise.
            conn = sqlite3.connect(
                self._path, timeout=self._busy_s, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA query_only=ON")
            self._conn = conn
        return self._conn

    def _plan(self, statement: Select[Any]) -> _Plan:
        # Keyed by identity and holding the statement, so an id is never reused.
        cached = self._plans.get(id(statement))
        if cached is not None:
            return cached[1]
        compiled = statement.compile(dialect=self._dialect)
        binds = compiled.binds
        params = [
            (name, binds[name].type.dialect_impl(self._dialect).bind_processor(self._dialect))
            for name in compiled.positiontup or ()
        ]
        columns = list(statement.selected_columns)
        plan = _Plan(
            sql=str(compiled),
            params=params,
            # dialect_impl: SQLite's own DATETIME etc., whose processors parse its text.
            processors=[
                c.type.dialect_impl(self._dialect).result_processor(self._dialect, None)
                for c in columns
            ],
            row=namedtuple("Row", [c.key for c in columns], rename=True),  # type: ignore[misc]
        )
        self._plans[id(statement)] = (statement, plan)
        return plan

    def first(self, statement: Select[Any], params: dict[str, Any]) -> Any:
        """The first row (attributes named as the selected columns), or None."""
        plan = self._plan(statement)
        values = [
            process(params[name]) if process else params[name] for name, process in plan.params
        ]
        raw = self._connection().execute(plan.sql, values).fetchone()
        if raw is None:
            return None
        return plan.row(*(p(v) if p else v for p, v in zip(plan.processors, raw, strict=True)))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
