"""Fast statements: the few statements every ingest runs, compiled once per dialect.

One seam for fast statements
----------------------------
``HotStatement`` is the only place in the project where SQL reaches the driver without going
through ``Connection.execute``. Seven repositories use it, for the statements of every
ingest: the token lookup, the SMART client's organisation, the patient and active-course
check, the assessment and alert inserts, the audit and event rows (deferred, one
``executemany`` each before the commit) and the caseload's stale mark. For those,
SQLAlchemy's per-execution machinery (compilation cache lookup, execution context, result
object) costs several times the database work itself.

What passes the seam is still visible to whoever watches the engine:

- When nobody watches (no ``before_cursor_execute`` or ``after_cursor_execute`` listener on
  the connection or its engine, and no SQL logging: ``echo`` off and the
  ``sqlalchemy.engine`` logger below INFO), the compiled SQL runs straight on a DBAPI cursor.
  Checking costs two attribute reads.
- When someone does, the same SQL and the same processed parameters go through
  ``Connection.exec_driver_sql``, so Core fires ``before_cursor_execute`` /
  ``after_cursor_execute`` (``executemany=True`` for ``run_many`` of more than one row; one
  row is one execution, as in Core) with a real execution
  context, logs the statement when ``echo`` is on (parameters hidden, as the engines are
  built with ``hide_parameters=True``) and wraps driver errors as it does for any statement.

Tracing, statement logging and tests that count statements therefore see the ingest's busiest
route like any other; the price of being watched is paid only while someone watches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect

_Prepared = tuple[str, list[tuple[str, Any]], bool]


def observed(conn: Connection) -> bool:
    """Would Core tell anyone about a statement run on ``conn``? SQL logging (``echo``, or the
    engine's logger at INFO, as the connection saw it when it was opened), or a
    cursor-execution listener on the engine (its class included) or on the connection itself.

    The engine's listeners are asked directly rather than through the connection's joined
    dispatch (a third of the cost), and other events (SQLite's ``connect`` and ``begin``) do
    not count: they say nothing about statements.
    """
    if conn._echo:
        return True
    engine_events = conn.engine.dispatch
    if engine_events.before_cursor_execute or engine_events.after_cursor_execute:
        return True
    if conn._has_events:  # listeners of this connection (or of the Connection class)
        own = conn.dispatch
        return bool(own.before_cursor_execute or own.after_cursor_execute)
    return False


class HotStatement:
    """A Core statement compiled once per dialect and run on the DBAPI cursor, or through
    ``exec_driver_sql`` while the engine is observed (see the module's docstring).

    Only for the few statements that every ingest runs: there SQLAlchemy's per-execution
    machinery costs several times the database work itself. Values still pass through the
    columns' own bind processors (timestamps, JSON), so what is stored is exactly what Core
    would store, and the SQL is the one SQLAlchemy compiles for the dialect. Rows come back as
    plain tuples, so a hot SELECT returns only columns that need no result processing
    (strings, numbers).
    """

    def __init__(self, statement: Any, *, keys: Sequence[str] | None = None) -> None:
        self._statement = statement
        self._keys = list(keys) if keys is not None else None
        self._compiled: dict[str, _Prepared] = {}
        self._constants: dict[str, Any] = {}

    def _prepare(self, dialect: Dialect) -> _Prepared:
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
        """Run the statement; returns something with ``fetchone``/``fetchall``/``close``
        (a DBAPI cursor, or Core's result while the engine is observed)."""
        sql, processors, positional = self._compiled.get(conn.dialect.name) or self._prepare(
            conn.dialect
        )
        if self._constants:
            params = {**self._constants, **params}
        values = [proc(params[name]) if proc else params[name] for name, proc in processors]
        if observed(conn):
            driver_params = (
                tuple(values)
                if positional
                else dict(zip((n for n, _ in processors), values, strict=True))
            )
            return conn.exec_driver_sql(sql, driver_params)
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
            batch.append(tuple(values) if positional else dict(zip(names, values, strict=True)))
        if observed(conn):
            conn.exec_driver_sql(sql, batch).close()
            return
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(sql, batch)
        finally:
            cursor.close()
