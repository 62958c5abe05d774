"""Fast statements: the few statements every ingest runs, compiled once per dialect."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect


class HotStatement:
    """A Core statement compiled once per dialect and run straight on the DBAPI cursor.

    Only for the few statements that every ingest runs (token lookup, patient check,
    assessment and alert inserts): there SQLAlchemy's per-execution machinery costs several
    times the database work itself. Values still pass through the columns' own bind
    processors (timestamps, JSON), so what is stored is exactly what Core would store, and the
    SQL is the one SQLAlchemy compiles for the dialect. Rows come back as plain tuples, so a
    hot SELECT returns only columns that need no result processing (strings, numbers).
    """

    def __init__(self, statement: Any, *, keys: Sequence[str] | None = None) -> None:
        self._statement = statement
        self._keys = list(keys) if keys is not None else None
        self._compiled: dict[str, tuple[str, list[tuple[str, Any]], bool]] = {}
        self._constants: dict[str, Any] = {}

    def _prepare(self, dialect: Dialect) -> tuple[str, list[tuple[str, Any]], bool]:
        compiled = self._statement.compile(dialect=dialect, column_keys=self._keys)
        names = list(compiled.positiontup or ()) if dialect.positional else list(compiled.binds)
        processors = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in names
        ]
        # literals of the statement itself (LIMIT 1 …) travel as parameters too
        self._constants = {
            name: compiled.binds[name].effective_value
            for name in names
            if not compiled.binds[name].required and name not in (self._keys or ())
        }
        prepared = (compiled.string, processors, bool(dialect.positional))
        self._compiled[dialect.name] = prepared
        return prepared

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        sql, processors, positional = self._compiled.get(conn.dialect.name) or self._prepare(
            conn.dialect
        )
        if self._constants:
            params = {**self._constants, **params}
        values = [proc(params[name]) if proc else params[name] for name, proc in processors]
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        if positional:
            cursor.execute(sql, values)
        else:
            cursor.execute(sql, dict(zip((n for n, _ in processors), values, strict=True)))
        return cursor

    def first(self, conn: Connection, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        cursor = self.execute(conn, params)
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()
        return tuple(row) if row is not None else None

    def run(self, conn: Connection, params: Mapping[str, Any]) -> None:
        self.execute(conn, params).close()

    def run_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        sql, processors, positional = self._compiled.get(conn.dialect.name) or self._prepare(
            conn.dialect
        )
        names = [name for name, _ in processors]
        batch: list[Any] = []
        for params in rows:
            merged = {**self._constants, **params} if self._constants else params
            values = [proc(merged[n]) if proc else merged[n] for n, proc in processors]
            batch.append(values if positional else dict(zip(names, values, strict=True)))
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(sql, batch)
        finally:
            cursor.close()
