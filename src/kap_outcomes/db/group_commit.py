"""Group commit for SQLite: the writes that arrive together share one transaction."""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread
from sqlalchemy import Connection

from kap_outcomes.db.batch import Job, Outcome, run_job, settle
from kap_outcomes.db.deferred import flush_deferred, forget_deferred, take_after_commit
from kap_outcomes.db.errors import translate
from kap_outcomes.metrics import GROUP_COMMIT_BATCH

if TYPE_CHECKING:
    from kap_outcomes.db.unit_of_work import Database

T = TypeVar("T")


class GroupCommitWriter:
    """Group commit for SQLite: the writes that arrive together share one transaction.

    SQLite admits one writer at a time and, with ``synchronous=FULL``, every commit syncs the
    WAL to disk. Worker threads fighting over the write lock sleep in SQLite's busy handler and
    ping-pong the GIL. Instead every write of this process goes through here: the use cases
    waiting together run on the event loop's thread (each in its own SAVEPOINT, so one that
    fails rolls back alone) on one long-lived connection, then a dedicated thread commits them
    all with a single sync while the loop goes on parsing the next requests. Only after that
    commit are the waiting requests answered: a 201 is never sent for data that is not durable.

    The transaction is driven on the driver connection (BEGIN IMMEDIATE, COMMIT, ROLLBACK);
    the SQLAlchemy connection handed to the use cases is in autocommit mode, so it never
    begins or ends a transaction of its own (its SAVEPOINTs nest inside ours).
    """

    def __init__(self, db: Database, max_batch: int = 64) -> None:
        self._db = db
        self._max_batch = max_batch
        self._pending: list[Job] = []
        self._drainer: asyncio.Task[None] | None = None
        self._conn: Connection | None = None
        self._commits: queue.SimpleQueue[tuple[Any, asyncio.Future[None]] | None] = (
            queue.SimpleQueue()
        )
        self._committer = threading.Thread(target=self._commit_loop, name="kap-commit", daemon=True)
        self._committer.start()

    async def submit(self, fn: Callable[[Connection], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._run(batch)
        finally:
            self._drainer = None

    def _connection(self) -> tuple[Connection, Any]:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            conn = self._db.engine.connect()
            conn.execution_options(kap_autocommit=True)
            self._conn = conn
        raw = self._conn.connection.dbapi_connection
        return self._conn, raw

    async def _begin(self) -> tuple[Connection, Any]:
        """BEGIN IMMEDIATE: inline when the lock is free (the usual case: this loop is the
        process's only writer), else in a worker thread that waits up to the busy timeout
        (another process, such as a second worker or the CLI, holds the lock)."""
        conn, raw = self._connection()
        raw.execute("PRAGMA busy_timeout=0")
        try:
            raw.execute("BEGIN IMMEDIATE")
            return conn, raw
        except sqlite3.OperationalError:
            pass

        def begin_waiting() -> None:
            raw.execute(f"PRAGMA busy_timeout={int(self._db.busy_timeout_ms)}")
            raw.execute("BEGIN IMMEDIATE")

        await anyio.to_thread.run_sync(begin_waiting)
        return conn, raw

    def _commit_loop(self) -> None:
        while (item := self._commits.get()) is not None:
            raw, future = item
            loop = future.get_loop()
            try:
                raw.execute("COMMIT")
            except BaseException as exc:
                loop.call_soon_threadsafe(settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(settle, future, None, None)

    async def _commit(self, raw: Any) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._commits.put((raw, future))
        await future

    async def _run(self, batch: list[Job]) -> None:
        GROUP_COMMIT_BATCH.observe(len(batch))
        outcomes: list[Outcome] = []
        raw: Any = None
        try:
            conn, raw = await self._begin()

            def rollback(_exc: Exception) -> None:
                raw.execute("ROLLBACK TO SAVEPOINT job")

            for job in batch:
                raw.execute("SAVEPOINT job")
                outcomes.append(run_job(conn, job, rollback))
                raw.execute("RELEASE SAVEPOINT job")
            flush_deferred(conn)
            await self._commit(raw)
        except Exception as exc:
            self._abandon(raw)
            failure = translate(exc)
            for _, future in batch:
                settle(future, None, failure)
            return
        for callback in take_after_commit(conn):
            callback()
        for future, result, error in outcomes:
            settle(future, result, error)

    def _abandon(self, raw: Any) -> None:
        """After a failure: roll back whatever is open and start over on a new connection."""
        if self._conn is not None:
            forget_deferred(self._conn)
        try:
            if raw is not None and raw.in_transaction:
                raw.execute("ROLLBACK")
        except Exception:  # noqa: S110 - the connection is discarded below anyway
            pass
        if self._conn is not None:
            self._conn.invalidate()
            self._conn = None

    def close(self) -> None:
        self._commits.put(None)
        self._committer.join(timeout=10)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
