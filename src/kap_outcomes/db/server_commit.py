"""PostgreSQL: group commit, and the small reads, each on one long-lived connection driven by a
thread of its own.

Every statement on a server database is a network round trip, so neither runs on the event
loop: the loop hands a job to the thread through a queue and awaits a future that the thread
settles (``call_soon_threadsafe``) once the job is done, for a write only once its transaction
has committed. Both connections are in autocommit mode at the driver; the writer issues
``BEGIN``, its SAVEPOINTs and ``COMMIT`` itself, so that two of them travel in one round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from sqlalchemy import Connection, event
from sqlalchemy.exc import DBAPIError

from kap_outcomes.db.batch import Job, Outcome, run_job, settle
from kap_outcomes.db.deferred import flush_deferred, forget_deferred, take_after_commit
from kap_outcomes.db.errors import translate
from kap_outcomes.metrics import GROUP_COMMIT_BATCH

if TYPE_CHECKING:
    from kap_outcomes.db.unit_of_work import Database

T = TypeVar("T")

_log = logging.getLogger("kap_outcomes")

_SAVEPOINT = "SAVEPOINT kap_job"
_NEXT_SAVEPOINT = "RELEASE SAVEPOINT kap_job; SAVEPOINT kap_job"
_ROLLBACK_JOB = "ROLLBACK TO SAVEPOINT kap_job"


class _ConnectionThread:
    """One long-lived autocommit connection and the thread that alone uses it."""

    def __init__(self, db: Database, name: str, max_batch: int) -> None:
        self._db = db
        self._max_batch = max_batch
        self._conn: Connection | None = None
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def submit(self, fn: Callable[[Connection], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put((fn, future))
        return await future

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            batch = [job]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            try:
                outcomes = self._run(batch)
            except Exception as exc:  # the thread must outlive any failure: requests wait on it
                self._discard()
                outcomes = [(future, None, translate(exc)) for _, future in batch]
            _settle_all(outcomes)
            if stop:
                break
        self._discard()

    def _run(self, batch: list[Job]) -> list[Outcome]:
        raise NotImplementedError

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            conn = self._db.engine.connect()
            conn.execution_options(isolation_level="AUTOCOMMIT")
            self._conn = conn
        return self._conn

    def _discard(self) -> None:
        """Forget the connection (after a failure, or at the end): a new one next time."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(Exception):  # a broken connection is being dropped anyway
            conn.rollback()  # ends an invalidated transaction, else nothing can be done
        with contextlib.suppress(Exception):
            forget_deferred(conn)
        with contextlib.suppress(Exception):
            conn.invalidate()
        with contextlib.suppress(Exception):
            conn.close()

    def _safe_rollback(self) -> None:
        """End SQLAlchemy's bookkeeping of a failed statement; a connection that cannot is
        replaced."""
        try:
            if self._conn is not None:
                self._conn.rollback()
        except Exception:
            self._discard()

    def _broken(self) -> bool:
        """Is the connection gone (rather than a statement failed on it)?"""
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            return True
        raw = conn.connection.dbapi_connection
        return raw is None or bool(raw.closed or getattr(raw, "broken", False))

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=10)


class ServerReader(_ConnectionThread):
    """The small reads of every request (the token lookup) in autocommit: one statement, one
    round trip, no ``BEGIN``/``COMMIT`` around it, no pool checkout.

    A read that finds the connection broken (the server restarted since the last one) is
    tried once more on a new connection: it changed nothing, so that is safe, and the first
    request after a restart is not a needless 503.
    """

    def __init__(self, db: Database) -> None:
        super().__init__(db, "kap-pg-reader", max_batch=64)

    def _run(self, batch: list[Job]) -> list[Outcome]:
        return [self._read(fn, future) for fn, future in batch]

    def _read(self, fn: Callable[[Connection], Any], future: asyncio.Future[Any]) -> Outcome:
        for attempt in (1, 2):
            try:
                conn = self._connection()
                result = fn(conn)
                conn.rollback()  # SQLAlchemy's bookkeeping; nothing is open at the server
                return future, result, None
            except Exception as exc:
                if not self._broken():
                    self._safe_rollback()
                    return future, None, translate(exc)
                self._discard()
                if attempt == 2:
                    return future, None, translate(exc)
        raise AssertionError("unreachable")  # pragma: no cover


class _Unguarded(Exception):
    """A job failed outside any SAVEPOINT: its transaction can only be rolled back whole.
    ``outcome`` is the job's answer, or None when the failure cannot be pinned on one job (a
    database error in pipeline mode may belong to a statement of an earlier job)."""

    def __init__(self, index: int, error: Exception, outcome: Outcome | None) -> None:
        super().__init__(index)
        self.index = index
        self.error = error
        self.outcome = outcome


# the pipelines open now, by id of their driver connection (only the writer threads open one)
_PIPELINES: dict[int, Any] = {}


def _synced(cursor: Any, run: Callable[[], object]) -> bool:
    """Core statements inside the writer's pipeline: run, then synced at once, so that Core
    finds their rows, row count and errors where it looks for them (psycopg gives none of these
    before a sync). Outside a pipeline (False) Core runs the statement itself."""
    pipeline = _PIPELINES.get(id(cursor.connection))
    if pipeline is None:
        return False
    run()
    pipeline.sync()
    return True


def _execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    return _synced(cursor, lambda: cursor.execute(statement, parameters))


def _execute_no_params(cursor: Any, statement: str, context: Any) -> bool:
    return _synced(cursor, lambda: cursor.execute(statement))


def _executemany(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    return _synced(cursor, lambda: cursor.executemany(statement, parameters))


def _sync_core_statements(engine: Any) -> None:
    for name, fn in (
        ("do_execute", _execute),
        ("do_execute_no_params", _execute_no_params),
        ("do_executemany", _executemany),
    ):
        if not event.contains(engine, name, fn):
            event.listen(engine, name, fn)


class ServerGroupCommit(_ConnectionThread):
    """Group commit for PostgreSQL: the writes that arrive together share one transaction.

    Every write of this process is queued here. The thread takes whatever is waiting (up to
    ``max_batch``), opens one transaction, runs the use cases one after the other, inserts the
    deferred rows, commits once, and only then answers the waiting requests: a 201 is never
    sent for uncommitted data. While it works, the next batch gathers. A batch costs ``BEGIN``
    and ``COMMIT`` once instead of per request, and the deferred rows travel with the
    ``COMMIT`` in one round trip (psycopg's pipeline mode).

    SAVEPOINTs cost a round trip each, so a batch takes none until a use case fails. Then the
    transaction is rolled back whole and run again: the use cases before the failing one
    again (they succeeded, so they need no SAVEPOINT), the failing one not again (its error is
    its answer), and each one after it in a SAVEPOINT of its own, so that a further failure
    rolls back alone, as before. Should one of those that succeeded fail on the second run
    (another process changed the data in between), the batch runs a third time with every use
    case in a SAVEPOINT. A batch of one needs none: its failure is the batch's.

    Use cases see one another's rows within a batch, as SQLite's group commit lets them;
    row locks they take are held until the batch commits.
    """

    def __init__(self, db: Database, max_batch: int = 64) -> None:
        _sync_core_statements(db.engine)
        super().__init__(db, "kap-pg-writer", max_batch=max_batch)

    def _run(self, batch: list[Job]) -> list[Outcome]:
        GROUP_COMMIT_BATCH.observe(len(batch))
        pipelined = True  # the first run: in pipeline mode, no SAVEPOINT at all
        guard_from = len(batch)
        known: Outcome | None = None
        try:
            conn = self._connection()
            while True:
                try:
                    if pipelined:
                        outcomes = self._pipelined(conn, batch)
                    else:
                        outcomes = self._transaction(conn, batch, guard_from, known)
                    break
                except _Unguarded as failed:
                    if self._broken() or (len(batch) == 1 and failed.outcome is not None):
                        raise failed.error from None  # the batch fails, as the job did
                    self._abandon()
                    conn = self._connection()
                    if pipelined and failed.outcome is not None:  # pinned on one job
                        guard_from, known = failed.index, failed.outcome
                    else:  # not pinned, or one that had succeeded failed on the second run
                        guard_from, known = 0, None
                    pipelined = False
        except Exception as exc:
            self._abandon()
            failure = translate(exc)
            return [(future, None, failure) for _, future in batch]
        for callback in take_after_commit(conn):
            try:
                callback()
            except Exception:  # committed is committed: the requests still get their answer
                _log.exception("an after-commit callback failed")
        return outcomes

    def _pipelined(self, conn: Connection, batch: list[Job]) -> list[Outcome]:
        """The first run of a batch, in psycopg's pipeline mode: a statement whose result
        nobody reads (``BEGIN``, an insert, the deferred rows, ``COMMIT``) travels with the
        next one that is read, so a job that reads once and writes once costs one round trip.
        A failure raises ``_Unguarded``, pinned on its job only if it is no database error."""
        raw = conn.connection.dbapi_connection
        assert raw is not None
        outcomes: list[Outcome] = []

        def unguarded(exc: Exception) -> None:
            index = len(outcomes)
            pinned = not isinstance(exc, psycopg.Error | DBAPIError)
            answer = (batch[index][1], None, translate(exc)) if pinned else None
            raise _Unguarded(index, exc, answer)

        try:
            with raw.pipeline() as pipeline:
                _PIPELINES[id(raw)] = pipeline
                try:
                    raw.execute("BEGIN")
                    for job in batch:
                        outcomes.append(run_job(conn, job, unguarded))
                    flush_deferred(conn)
                    raw.execute("COMMIT")
                finally:
                    del _PIPELINES[id(raw)]
        except _Unguarded:
            raise
        except Exception as exc:  # at the final sync: an insert or a deferred row failed
            raise _Unguarded(len(outcomes), exc, None) from exc
        conn.rollback()  # SQLAlchemy's bookkeeping of the autobegun transaction
        return outcomes

    def _transaction(
        self, conn: Connection, batch: list[Job], guard_from: int, known: Outcome | None
    ) -> list[Outcome]:
        """A later run of the batch (after a failure), statement by statement: the jobs before
        ``guard_from`` without a SAVEPOINT (a failure raises ``_Unguarded``), the one at
        ``guard_from`` answered with ``known`` if given (else run in a SAVEPOINT too), each
        later one in a SAVEPOINT; then the commit."""
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("BEGIN")
        outcomes: list[Outcome] = []
        savepoint = _SAVEPOINT

        def unguarded(exc: Exception) -> None:
            raise _Unguarded(len(outcomes), exc, (batch[len(outcomes)][1], None, translate(exc)))

        def rollback(exc: Exception) -> None:
            if self._broken():
                raise exc  # the batch fails: no connection to go back on
            raw.execute(_ROLLBACK_JOB)

        for index, job in enumerate(batch):
            if index < guard_from:
                outcomes.append(run_job(conn, job, unguarded))
            elif index == guard_from and known is not None:
                outcomes.append(known)
            else:
                raw.execute(savepoint)
                savepoint = _NEXT_SAVEPOINT
                outcomes.append(run_job(conn, job, rollback))
        with raw.pipeline():  # the deferred rows and the COMMIT: one round trip
            flush_deferred(conn)
            raw.execute("COMMIT")
        conn.rollback()  # SQLAlchemy's bookkeeping of the autobegun transaction
        return outcomes

    def _abandon(self) -> None:
        """Roll back whatever is open; a connection that cannot is replaced."""
        conn = self._conn
        if conn is None:
            return
        try:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.execute("ROLLBACK")
            conn.rollback()
            forget_deferred(conn)
        except Exception:
            self._discard()


def _settle_all(outcomes: list[Outcome]) -> None:
    """Answer each waiting request on its own loop (one wake-up per loop, not per request)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].get_loop(), []).append(outcome)
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
            loop.call_soon_threadsafe(_settle_many, settled)


def _settle_many(outcomes: list[Outcome]) -> None:
    for future, result, error in outcomes:
        settle(future, result, error)
