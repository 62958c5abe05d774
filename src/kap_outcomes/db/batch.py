"""What SQLite's and PostgreSQL's group-commit writers share: running one unit of work of a
batch inside its SAVEPOINT (on failure rolled back alone: its SAVEPOINT and what it deferred),
and answering the request that waits for it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from kap_outcomes.db.deferred import deferred_mark, drop_deferred_since
from kap_outcomes.db.errors import translate

Job = tuple[Callable[[Connection], Any], "asyncio.Future[Any]"]
Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


def run_job(conn: Connection, job: Job, rollback: Callable[[Exception], None]) -> Outcome:
    """Run ``job`` on ``conn``, whose SAVEPOINT the caller has opened. If it fails,
    ``rollback(exc)`` undoes its SAVEPOINT (or raises to fail the whole batch) and what it
    deferred is forgotten; its outcome then carries the translated error."""
    fn, future = job
    mark = deferred_mark(conn)
    try:
        result = fn(conn)
    except Exception as exc:
        rollback(exc)
        drop_deferred_since(conn, mark)
        return future, None, translate(exc)
    return future, result, None


def settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Answer a waiting request with its job's result or error (on the future's own loop)."""
    if future.done():  # the client went away; committed data stays committed
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
