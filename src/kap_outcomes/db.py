"""Engine, the unit of work, SQLite pragmas and shared column types.

One owner of every transaction: :meth:`Database.write` runs a whole use case in one worker
thread inside one transaction and commits before it returns, so a router that awaits it can
only answer 201 for data that is durably committed. Services never commit.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import JSON, Connection, DateTime, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel, create_engine

from kap_outcomes.errors import unavailable

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION

JSONType = JSON().with_variant(JSONB(), "postgresql")


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC timestamp on every backend (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(
    url: str, *, busy_timeout_ms: int = 5000, pool_size: int = 10, pool_timeout_s: float = 5.0
) -> Engine:
    if is_sqlite(url) and (url in ("sqlite://", "sqlite:///:memory:")):
        engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
        _configure_sqlite(engine, busy_timeout_ms)
        return engine
    if is_sqlite(url):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=pool_timeout_s,
        )
        _configure_sqlite(engine, busy_timeout_ms)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout_s,
        pool_recycle=1800,
        connect_args={"connect_timeout": 3} if url.startswith("postgresql") else {},
    )


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    """WAL, foreign keys, durable commits, and BEGIN IMMEDIATE for writers.

    ``synchronous=FULL`` syncs the WAL on every commit, so an acknowledged write survives a
    power cut, not only a killed process. Writers take the write lock at BEGIN so that two
    writers wait on the busy timeout instead of failing on a lock upgrade.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get("kap_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _translate(exc: BaseException) -> BaseException:
    """A database that cannot be reached or is locked is a 503, never a 500."""
    if isinstance(exc, (OperationalError, PoolTimeoutError)):
        return unavailable()
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return unavailable()
    return exc


@dataclass(slots=True)
class _Job:
    fn: Callable[[Connection], Any]
    future: Future[Any] = field(default_factory=Future)


class GroupCommitWriter:
    """One writer thread that commits the writes waiting together in one transaction.

    SQLite admits one writer at a time, and with ``synchronous=FULL`` every commit costs a
    sync of the WAL. Letting request threads fight over the write lock makes them sleep in
    SQLite's busy handler; this thread instead takes every write queued meanwhile, runs each in
    its own SAVEPOINT (one failing use case rolls back alone), commits once, and only then
    resolves the waiting requests. A response is never sent before its commit.
    """

    def __init__(self, db: Database, max_batch: int = 128) -> None:
        self._db = db
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="kap-writer", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[Connection], T]) -> Future[T]:
        job = _Job(fn)
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            batch = [job]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._run(batch)
            if stop:
                return

    def _run(self, batch: list[_Job]) -> None:
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        try:
            with self._db.connect(write=True) as conn, conn.begin():
                for job in batch:
                    savepoint = conn.begin_nested()
                    try:
                        result = job.fn(conn)
                    except Exception as exc:
                        savepoint.rollback()
                        outcomes.append((job, None, exc))
                    else:
                        savepoint.commit()
                        outcomes.append((job, result, None))
        except Exception as exc:
            failure = _translate(exc)
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(failure)
            return
        for job, result, error in outcomes:
            if error is None:
                job.future.set_result(result)
            else:
                job.future.set_exception(_translate(error))


class Database:
    """The engine and the unit of work around it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        self._writer: GroupCommitWriter | None = None

    def connect(self, *, write: bool) -> Connection:
        conn = self.engine.connect()
        if write:
            conn.execution_options(kap_write=True)
        return conn

    def run_write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one transaction and commit it; roll back on any error."""
        try:
            with self.connect(write=True) as conn, conn.begin():
                return fn(conn)
        except Exception as exc:
            translated = _translate(exc)
            if translated is exc:
                raise
            raise translated from exc

    def run_read(self, fn: Callable[[Connection], T]) -> T:
        try:
            with self.connect(write=False) as conn, conn.begin():
                return fn(conn)
        except Exception as exc:
            translated = _translate(exc)
            if translated is exc:
                raise
            raise translated from exc

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run a use case in its own committed transaction (grouped with others on SQLite)."""
        if self.sqlite:
            if self._writer is None:
                self._writer = GroupCommitWriter(self)
            return await asyncio.wrap_future(self._writer.submit(fn))
        return await anyio.to_thread.run_sync(self.run_write, fn)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        return await anyio.to_thread.run_sync(self.run_read, fn)

    async def read_small(self, fn: Callable[[Connection], T]) -> T:
        """A read of a row or two by primary or unique key.

        On SQLite it runs inline: a WAL reader never waits on a lock and an indexed lookup
        takes microseconds, less than a hop to a worker thread. Elsewhere it is a network
        round trip, so it goes to a worker thread like any other read.
        """
        if self.sqlite:
            return self.run_read(fn)
        return await self.read(fn)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.engine.dispose()
