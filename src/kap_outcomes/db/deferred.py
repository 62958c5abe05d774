"""What a transaction keeps for its end: rows inserted in one batch just before the commit,
and callbacks run once it has committed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection

from kap_outcomes.db.statements import HotStatement

DEFERRED_KEY = "kap_deferred_rows"
AFTER_COMMIT_KEY = "kap_after_commit"


def defer_rows(conn: Connection, statement: HotStatement, row: Mapping[str, Any]) -> None:
    """Insert ``row`` with the transaction's other deferred rows, in one ``executemany`` per
    statement just before the commit (same transaction; a unit of work that fails has its
    rows dropped)."""
    conn.info.setdefault(DEFERRED_KEY, []).append((statement, row))


def deferred_mark(conn: Connection) -> tuple[int, int]:
    """Where a unit of work starts: its deferred rows and after-commit callbacks so far."""
    info = conn.info
    return len(info.get(DEFERRED_KEY, ())), len(info.get(AFTER_COMMIT_KEY, ()))


def drop_deferred_since(conn: Connection, mark: tuple[int, int]) -> None:
    """Forget what a unit of work that failed deferred: its rows and its callbacks."""
    rows, callbacks = mark
    if DEFERRED_KEY in conn.info:
        del conn.info[DEFERRED_KEY][rows:]
    pending = conn.info.get(AFTER_COMMIT_KEY)
    if pending and len(pending) > callbacks:
        for callback in list(pending)[callbacks:]:
            del pending[callback]


def forget_deferred(conn: Connection) -> None:
    """Forget every deferred row and after-commit callback (the transaction did not commit)."""
    conn.info.pop(DEFERRED_KEY, None)
    conn.info.pop(AFTER_COMMIT_KEY, None)


def flush_deferred(conn: Connection) -> None:
    grouped: dict[HotStatement, list[Mapping[str, Any]]] = {}
    for statement, row in conn.info.pop(DEFERRED_KEY, ()):
        grouped.setdefault(statement, []).append(row)
    for statement, rows in grouped.items():
        statement.run_many(conn, rows)


def after_commit(conn: Connection, callback: Callable[[], None]) -> None:
    """Call ``callback`` once the transaction has committed (once, however often asked)."""
    conn.info.setdefault(AFTER_COMMIT_KEY, {})[callback] = None


def take_after_commit(conn: Connection) -> list[Callable[[], None]]:
    return list(conn.info.pop(AFTER_COMMIT_KEY, {}))
