"""The unit of work: one owner of every transaction.

:meth:`Database.write` runs a whole use case in one transaction and commits before it returns,
so a router that awaits it can only answer 201 for data that is durably committed. Services
never commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread
from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool
from sqlmodel import create_engine

from kap_outcomes.db.deferred import flush_deferred, forget_deferred, take_after_commit
from kap_outcomes.db.errors import translate
from kap_outcomes.db.group_commit import GroupCommitWriter

if TYPE_CHECKING:  # imported on first use: a process on SQLite never loads psycopg
    from kap_outcomes.db.server_commit import ServerGroupCommit, ServerReader

T = TypeVar("T")

PING_CONNECT_TIMEOUT_S = 2
"""How long the readiness check waits for a new connection to a server database."""


def _unchanged(fn: Callable[[Connection], T]) -> Callable[[Connection], T]:
    return fn


class Database:
    """The engine and the unit of work around it."""

    def __init__(self, engine: Engine, *, busy_timeout_ms: int = 5000) -> None:
        self.engine = engine
        self.busy_timeout_ms = busy_timeout_ms
        self.sqlite = engine.dialect.name == "sqlite"
        self._writer: GroupCommitWriter | None = None
        self._server_writer: ServerGroupCommit | None = None
        self._server_reader: ServerReader | None = None
        self._loop_reader: Connection | None = None
        # set by the app: wraps every unit of work of ``write`` (the audit trail's hook)
        self.wrap_write: Callable[[Callable[[Connection], Any]], Callable[[Connection], Any]] = (
            _unchanged
        )
        self._ping_engine: Engine | None = None

    def connect(self, *, write: bool) -> Connection:
        conn = self.engine.connect()
        if write:
            conn.execution_options(kap_write=True)
        return conn

    def run_write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one transaction and commit it; roll back on any error."""
        return self._run(fn, write=True)

    def run_read(self, fn: Callable[[Connection], T]) -> T:
        return self._run(fn, write=False)

    def _run(self, fn: Callable[[Connection], T], *, write: bool) -> T:
        try:
            with self.connect(write=write) as conn:
                try:
                    with conn.begin():
                        result = fn(conn)
                        flush_deferred(conn)
                except BaseException:
                    # what a failed unit of work deferred must not reach the connection's
                    # next transaction (``conn.info`` outlives the checkout)
                    forget_deferred(conn)
                    raise
                callbacks = take_after_commit(conn)
            for callback in callbacks:
                callback()
            return result
        except Exception as exc:
            translated = translate(exc)
            if translated is exc:
                raise
            raise translated from exc

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run a use case and commit it before returning; the writes that arrive together
        share one commit (SQLite: ``GroupCommitWriter``; a server database:
        ``ServerGroupCommit``), each in a SAVEPOINT of its own."""
        fn = self.wrap_write(fn)
        if self.sqlite:
            if self._writer is None:
                self._writer = GroupCommitWriter(self)
            return await self._writer.submit(fn)
        if self._server_writer is None:
            from kap_outcomes.db.server_commit import ServerGroupCommit

            self._server_writer = ServerGroupCommit(self)
        return await self._server_writer.submit(fn)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        return await anyio.to_thread.run_sync(self.run_read, fn)

    async def read_small(self, fn: Callable[[Connection], T]) -> T:
        """A single-statement read of a row or two by key (the token lookup of every request).

        On SQLite it runs inline on the event loop's thread, on one long-lived connection in
        autocommit mode: a WAL reader never waits on a lock and an indexed lookup takes a few
        microseconds, less than a pool checkout or a hop to a worker thread. Elsewhere it is a
        network round trip: it goes to the thread of ``ServerReader``, which runs it on its own
        long-lived connection in autocommit (one round trip, no BEGIN/COMMIT, no checkout).
        """
        if not self.sqlite:
            if self._server_reader is None:
                from kap_outcomes.db.server_commit import ServerReader

                self._server_reader = ServerReader(self)
            return await self._server_reader.submit(fn)
        conn = self._loop_reader
        if conn is None or conn.closed or conn.invalidated:
            conn = self._loop_reader = self.engine.connect()
            conn.execution_options(kap_autocommit=True)
        try:
            return fn(conn)
        except Exception as exc:
            conn.close()
            self._loop_reader = None
            translated = translate(exc)
            if translated is exc:
                raise
            raise translated from exc
        finally:
            if not conn.closed:
                conn.rollback()

    def ping(self) -> bool:
        """Does the database answer? On a server database, on a new connection of its own.

        Not a pooled one: a pooled connection to a server that has stopped answering (frozen,
        failing over) waits forever in the pool's pre-ping, and /readyz with it; a new
        connection gives up after ``PING_CONNECT_TIMEOUT_S``.
        """
        try:
            self.probe(lambda conn: conn.execute(text("SELECT 1")))
            return True
        except Exception:
            return False

    def probe(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` on the connection ``ping`` uses (a new one on a server database)."""
        with self._pinger().connect() as conn:
            return fn(conn)

    def _pinger(self) -> Engine:
        if self.sqlite:
            return self.engine
        if self._ping_engine is None:
            self._ping_engine = create_engine(
                self.engine.url,
                poolclass=NullPool,
                connect_args={"connect_timeout": PING_CONNECT_TIMEOUT_S},
                hide_parameters=True,
            )
        return self._ping_engine

    def dispose(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for server in (self._server_writer, self._server_reader):
            if server is not None:
                server.close()
        self._server_writer = self._server_reader = None
        if self._loop_reader is not None:
            self._loop_reader.close()
            self._loop_reader = None
        if self._ping_engine is not None:
            self._ping_engine.dispose()
            self._ping_engine = None
        self.engine.dispose()
