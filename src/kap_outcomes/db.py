"""Engine, the unit of work, SQLite pragmas and shared column types.

One owner of every transaction: :meth:`Database.write` runs a whole use case in one worker
thread inside one transaction and commits before it returns, so a router that awaits it can
only answer 201 for data that is durably committed. Services never commit.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio.to_thread
import orjson
import psycopg
from sqlalchemy import JSON, Connection, DateTime, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DBAPIError, OperationalError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import NullPool, StaticPool
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel, create_engine

from kap_outcomes.errors import DomainError, invalid, unavailable
from kap_outcomes.metrics import GROUP_COMMIT_BATCH

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
NullableJSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
"""A JSON column whose Python None is SQL NULL (not the JSON value ``null``)."""


class _RandomBytes(threading.local):
    """The operating system's random bytes, read 4 KiB at a time per thread.

    Each ``os.urandom`` call is a system call that releases the GIL; under load a request
    making three ids waited for the GIL three more times (the ingest profile). The bytes are
    the same CSPRNG output, only read in bulk, and each is handed out once.
    """

    SIZE = 4096

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        self.pool = b""
        self.at = 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.pool):
            self.pool, self.at = os.urandom(self.SIZE), 0
        chunk = self.pool[self.at : self.at + n]
        self.at += n
        return chunk


_random_bytes = _RandomBytes()
os.register_at_fork(after_in_child=_random_bytes.forget)  # a child never reuses its bytes


def new_id() -> str:
    """A UUIDv7 (RFC 9562 §5.7): 48 bits of Unix milliseconds, then 74 random bits.

    Still an opaque, unguessable id to clients; for the database, new rows land at the end of
    every primary-key index instead of on a random page, so a commit writes a few pages, not
    one per row (the ingest benchmark slowed down as the table grew with UUIDv4).
    """
    millis = f"{time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF:012x}"
    rand = int.from_bytes(_random_bytes.take(10))  # 80 bits, 74 used
    return (
        f"{millis[:8]}-{millis[8:]}-7{rand >> 62 & 0xFFF:03x}"
        f"-{0x8000 | rand >> 48 & 0x3FFF:04x}-{rand & 0xFFFF_FFFF_FFFF:012x}"
    )


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

    def bind_processor(self, dialect: Dialect) -> Any:
        """On SQLite, straight to the text SQLAlchemy's DATETIME stores (``2026-03-02
        15:04:05.000000``, microseconds always), in one step: every ingest binds five."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime refused")
            if value.utcoffset():
                value = value.astimezone(UTC)
            return (
                f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
                f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
            )

        return process


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


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


_DEFERRED = "kap_deferred_rows"


def defer_rows(conn: Connection, statement: HotStatement, row: Mapping[str, Any]) -> None:
    """Insert ``row`` with the transaction's other deferred rows, in one ``executemany`` per
    statement just before the commit (same transaction; a unit of work that fails has its
    rows dropped)."""
    conn.info.setdefault(_DEFERRED, []).append((statement, row))


def deferred_mark(conn: Connection) -> tuple[int, int]:
    """Where a unit of work starts: its deferred rows and after-commit callbacks so far."""
    info = conn.info
    return len(info.get(_DEFERRED, ())), len(info.get(_AFTER_COMMIT, ()))


def drop_deferred_since(conn: Connection, mark: tuple[int, int]) -> None:
    """Forget what a unit of work that failed deferred: its rows and its callbacks."""
    rows, callbacks = mark
    if _DEFERRED in conn.info:
        del conn.info[_DEFERRED][rows:]
    pending = conn.info.get(_AFTER_COMMIT)
    if pending and len(pending) > callbacks:
        for callback in list(pending)[callbacks:]:
            del pending[callback]


def flush_deferred(conn: Connection) -> None:
    grouped: dict[HotStatement, list[Mapping[str, Any]]] = {}
    for statement, row in conn.info.pop(_DEFERRED, ()):
        grouped.setdefault(statement, []).append(row)
    for statement, rows in grouped.items():
        statement.run_many(conn, rows)


_AFTER_COMMIT = "kap_after_commit"


def after_commit(conn: Connection, callback: Callable[[], None]) -> None:
    """Call ``callback`` once the transaction has committed (once, however often asked)."""
    conn.info.setdefault(_AFTER_COMMIT, {})[callback] = None


def _take_after_commit(conn: Connection) -> list[Callable[[], None]]:
    return list(conn.info.pop(_AFTER_COMMIT, {}))


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(
    url: str, *, busy_timeout_ms: int = 5000, pool_size: int = 10, pool_timeout_s: float = 5.0
) -> Engine:
    if is_sqlite(url) and (url in ("sqlite://", "sqlite:///:memory:")):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False},
            poolclass=StaticPool,
            hide_parameters=True,
        )
        _configure_sqlite(engine, busy_timeout_ms)
        return engine
    if is_sqlite(url):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=pool_timeout_s,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            hide_parameters=True,  # bound values are patient data: never in an error
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
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        connect_args={"connect_timeout": 3} if url.startswith("postgresql") else {},
        hide_parameters=True,  # bound values are patient data: never in an error
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
        cur.execute("PRAGMA mmap_size=268435456")  # read pages through a map, not read()
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get("kap_autocommit", False):
            return  # single statements, each its own implicit transaction
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("kap_write", False) else "BEGIN")


PING_CONNECT_TIMEOUT_S = 2
"""How long the readiness check waits for a new connection to a server database."""

_SQLITE_UNAVAILABLE = frozenset({5, 6, 7, 8, 10, 11, 13, 14, 15, 26})
"""Primary result codes of SQLite that mean "not now" rather than "not this statement":
BUSY, LOCKED, NOMEM, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, NOTADB."""


def _unavailable(exc: BaseException) -> bool:
    """Is this the database failing (503, retry), rather than the statement or the value?

    SQLAlchemy's wrappers, and the drivers' own errors: the hot statements run on the DBAPI
    cursor, so a lost connection or a deadlock there reaches us unwrapped. psycopg's
    ``OperationalError`` is connection loss, shutdown, cancellation, deadlock and
    serialization failure; SQLite's mixes a locked or unreadable file with plain SQL errors,
    so there the result code decides."""
    if isinstance(exc, PoolTimeoutError | psycopg.OperationalError):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is None or code & 0xFF in _SQLITE_UNAVAILABLE
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        return not isinstance(exc.orig, sqlite3.OperationalError) or _unavailable(exc.orig)
    return False


def _out_of_range(exc: BaseException) -> bool:
    """A value the database cannot hold: SQLSTATE class 22 (data exception: a number or
    timestamp out of range, text PostgreSQL refuses), a Python int beyond 64 bits for SQLite,
    a timestamp without a UTC form refused by :class:`UTCDateTime`."""
    orig = exc.orig if isinstance(exc, StatementError) else exc
    return isinstance(orig, psycopg.DataError | sqlite3.DataError | OverflowError)


def out_of_range() -> DomainError:
    return invalid([], detail="A value lies outside what can be stored; nothing was stored.")


def _translate(exc: BaseException) -> BaseException:
    """Database errors by kind: a database that cannot be reached or is locked is a 503, a
    value it cannot hold a 422; anything else stays what it is (a 500)."""
    if _unavailable(exc):
        return unavailable()
    if _out_of_range(exc):
        return out_of_range()
    return exc


_Job = tuple[Callable[[Connection], Any], "asyncio.Future[Any]"]


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
        self._pending: list[_Job] = []
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
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, None, None)

    async def _commit(self, raw: Any) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._commits.put((raw, future))
        await future

    async def _run(self, batch: list[_Job]) -> None:
        GROUP_COMMIT_BATCH.observe(len(batch))
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        raw: Any = None
        try:
            conn, raw = await self._begin()
            for fn, future in batch:
                raw.execute("SAVEPOINT job")
                mark = deferred_mark(conn)
                try:
                    result = fn(conn)
                except Exception as exc:
                    raw.execute("ROLLBACK TO SAVEPOINT job")
                    raw.execute("RELEASE SAVEPOINT job")
                    drop_deferred_since(conn, mark)
                    outcomes.append((future, None, exc))
                else:
                    raw.execute("RELEASE SAVEPOINT job")
                    outcomes.append((future, result, None))
            flush_deferred(conn)
            await self._commit(raw)
        except Exception as exc:
            self._abandon(raw)
            failure = _translate(exc)
            for _, future in batch:
                _settle(future, None, failure)
            return
        for callback in _take_after_commit(conn):
            callback()
        for future, result, error in outcomes:
            _settle(future, result, None if error is None else _translate(error))

    def _abandon(self, raw: Any) -> None:
        """After a failure: roll back whatever is open and start over on a new connection."""
        if self._conn is not None:
            self._conn.info.pop(_DEFERRED, None)
            self._conn.info.pop(_AFTER_COMMIT, None)
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


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the client went away; committed data stays committed
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _unchanged(fn: Callable[[Connection], T]) -> Callable[[Connection], T]:
    return fn


class Database:
    """The engine and the unit of work around it."""

    def __init__(self, engine: Engine, *, busy_timeout_ms: int = 5000) -> None:
        self.engine = engine
        self.busy_timeout_ms = busy_timeout_ms
        self.sqlite = engine.dialect.name == "sqlite"
        self._writer: GroupCommitWriter | None = None
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
                    conn.info.pop(_DEFERRED, None)
                    conn.info.pop(_AFTER_COMMIT, None)
                    raise
                callbacks = _take_after_commit(conn)
            for callback in callbacks:
                callback()
            return result
        except Exception as exc:
            translated = _translate(exc)
            if translated is exc:
                raise
            raise translated from exc

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run a use case in its own committed transaction (grouped with others on SQLite)."""
        fn = self.wrap_write(fn)
        if self.sqlite:
            if self._writer is None:
                self._writer = GroupCommitWriter(self)
            return await self._writer.submit(fn)
        return await anyio.to_thread.run_sync(self.run_write, fn)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        return await anyio.to_thread.run_sync(self.run_read, fn)

    async def read_small(self, fn: Callable[[Connection], T]) -> T:
        """A single-statement read of a row or two by key (the token lookup of every request).

        On SQLite it runs inline on the event loop's thread, on one long-lived connection in
        autocommit mode: a WAL reader never waits on a lock and an indexed lookup takes a few
        microseconds, less than a pool checkout or a hop to a worker thread. Elsewhere it is a
        network round trip, so it goes to a worker thread like any other read.
        """
        if not self.sqlite:
            return await self.read(fn)
        conn = self._loop_reader
        if conn is None or conn.closed or conn.invalidated:
            conn = self._loop_reader = self.engine.connect()
            conn.execution_options(kap_autocommit=True)
        try:
            return fn(conn)
        except Exception as exc:
            conn.close()
            self._loop_reader = None
            translated = _translate(exc)
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
        if self._loop_reader is not None:
            self._loop_reader.close()
            self._loop_reader = None
        if self._ping_engine is not None:
            self._ping_engine.dispose()
            self._ping_engine = None
        self.engine.dispose()
