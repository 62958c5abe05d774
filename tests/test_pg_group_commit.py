"""PostgreSQL's group commit and small reads (``db.server_commit``): writes that arrive together
share one transaction, one failing write rolls back alone, nothing is answered before its
commit, and a killed connection is replaced."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, text

from kap_outcomes.db import Database, make_engine
from kap_outcomes.errors import DomainError

from .conftest import PG_URL

pytestmark = pytest.mark.skipif(not PG_URL, reason="PostgreSQL's group commit")


@pytest.fixture
def table(database_url: str) -> Iterator[str]:
    name = f"gc_probe_{uuid.uuid4().hex[:10]}"
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {name} (n integer PRIMARY KEY, tx bigint NOT NULL)"))
    yield name
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {name}"))
    engine.dispose()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(make_engine(database_url))
    yield database
    database.dispose()


def _insert(table: str, n: int, *, fail: bool = False, hold: float = 0.0) -> Any:
    def job(conn: Connection) -> int:
        if hold:
            time.sleep(hold)  # keeps the writer busy: the next writes gather behind it
        conn.execute(
            text(f"INSERT INTO {table} (n, tx) VALUES (:n, pg_current_xact_id()::text::bigint)"),
            {"n": n},
        )
        if fail:
            raise ValueError(f"job {n} fails after its insert")
        return n

    return job


def _stored(database_url: str, table: str) -> dict[int, int]:
    """What another session sees: committed rows only."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return {n: tx for n, tx in conn.execute(text(f"SELECT n, tx FROM {table}"))}
    finally:
        engine.dispose()


def test_writes_that_arrive_together_share_one_transaction_and_fail_alone(
    db: Database, table: str, database_url: str
) -> None:
    async def scenario() -> list[Any]:
        first = asyncio.ensure_future(db.write(_insert(table, 0, hold=0.3)))
        await asyncio.sleep(0.05)  # the writer is inside job 0 now
        rest = [db.write(_insert(table, n, fail=(n == 3))) for n in range(1, 6)]
        return await asyncio.gather(first, *rest, return_exceptions=True)

    results = asyncio.run(scenario())
    assert results[0] == 0
    assert [r for i, r in enumerate(results) if i != 3] == [0, 1, 2, 4, 5]
    assert isinstance(results[3], ValueError)

    stored = _stored(database_url, table)
    assert sorted(stored) == [0, 1, 2, 4, 5]  # job 3's insert rolled back alone
    # PostgreSQL's own transaction ids: the five that waited together committed as one
    assert len({stored[n] for n in (1, 2, 4, 5)}) == 1
    assert stored[0] != stored[1]


def test_a_write_is_answered_only_once_committed(
    db: Database, table: str, database_url: str
) -> None:
    async def scenario() -> dict[int, int]:
        await db.write(_insert(table, 7))
        return _stored(database_url, table)  # at once, from another session

    assert list(asyncio.run(scenario())) == [7]


def test_a_failing_write_alone_rolls_back_and_the_next_one_commits(
    db: Database, table: str, database_url: str
) -> None:
    async def scenario() -> None:
        with pytest.raises(ValueError):
            await db.write(_insert(table, 1, fail=True))
        await db.write(_insert(table, 2))

    asyncio.run(scenario())
    assert list(_stored(database_url, table)) == [2]


def _terminate(database_url: str, pid: int) -> None:
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    finally:
        engine.dispose()


def _pid(conn: Connection) -> int:
    return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_killed_connections_are_replaced(db: Database, table: str, database_url: str) -> None:
    async def scenario() -> list[Any]:
        writer_pid = await db.write(_pid)
        reader_pid = await db.read_small(_pid)
        assert writer_pid != reader_pid
        _terminate(database_url, writer_pid)
        _terminate(database_url, reader_pid)
        # the small read changed nothing: it is retried on a new connection at once
        reader_again = await db.read_small(_pid)
        # the write on the dead connection is a 503 (it may have reached nothing)...
        first: Any
        try:
            first = await db.write(_insert(table, 1))
        except DomainError as exc:
            first = exc.status
        # ...and the next one runs on a new connection
        second = await db.write(_insert(table, 2))
        writer_again = await db.write(_pid)
        return [reader_pid, reader_again, first, second, writer_pid, writer_again]

    reader_pid, reader_again, first, second, writer_pid, writer_again = asyncio.run(scenario())
    assert reader_again != reader_pid
    assert first == 503
    assert second == 2
    assert writer_again != writer_pid
    assert sorted(_stored(database_url, table)) == [2]


def _counted(job: Any, calls: list[int], fail_on: set[int]) -> Any:
    """``job``, recording each call and failing (before touching the database) on the calls
    numbered in ``fail_on`` (1 = the first)."""

    def counted(conn: Connection) -> Any:
        calls.append(1)
        if len(calls) in fail_on:
            raise ValueError(f"call {len(calls)} fails")
        return job(conn)

    return counted


def _batch_behind_a_slow_write(db: Database, table: str, jobs: list[Any]) -> list[Any]:
    """Runs ``jobs`` as one batch: they queue while the writer holds a slow first write."""

    async def scenario() -> list[Any]:
        first = asyncio.ensure_future(db.write(_insert(table, 100, hold=0.3)))
        await asyncio.sleep(0.05)  # the writer is inside the slow write now
        rest = [db.write(job) for job in jobs]
        return await asyncio.gather(first, *rest, return_exceptions=True)

    return asyncio.run(scenario())[1:]


def test_several_failures_in_one_batch_each_roll_back_alone(
    db: Database, table: str, database_url: str
) -> None:
    jobs = [_insert(table, n, fail=n in (2, 5)) for n in range(1, 7)]
    results = _batch_behind_a_slow_write(db, table, jobs)
    assert [isinstance(r, ValueError) for r in results] == [False, True, False, False, True, False]
    stored = _stored(database_url, table)
    assert sorted(stored) == [1, 3, 4, 6, 100]
    assert len({stored[n] for n in (1, 3, 4, 6)}) == 1  # one transaction for the survivors


def test_a_failing_write_in_a_batch_is_not_run_twice(
    db: Database, table: str, database_url: str
) -> None:
    calls: list[int] = []
    jobs = [
        _insert(table, 1),
        _counted(_insert(table, 2, fail=True), calls, set()),
        _insert(table, 3),
    ]
    results = _batch_behind_a_slow_write(db, table, jobs)
    assert results[0] == 1 and results[2] == 3
    assert isinstance(results[1], ValueError)
    assert len(calls) == 1  # its error was its answer: nothing of it ran again
    assert sorted(_stored(database_url, table)) == [1, 3, 100]


def test_a_write_that_fails_only_when_run_again_still_commits(
    db: Database, table: str, database_url: str
) -> None:
    """Job 1 succeeds, job 2 fails; the batch runs again and job 1 fails this time (as if
    another process had changed the data in between); it runs a third time, every job in a
    SAVEPOINT, and job 1 succeeds again: the outcome is the one a run with SAVEPOINTs gives."""
    calls: list[int] = []
    jobs = [
        _counted(_insert(table, 1), calls, fail_on={2}),
        _insert(table, 2, fail=True),
        _insert(table, 3),
    ]
    results = _batch_behind_a_slow_write(db, table, jobs)
    assert results[0] == 1 and results[2] == 3
    assert isinstance(results[1], ValueError)
    assert len(calls) == 3
    stored = _stored(database_url, table)
    assert sorted(stored) == [1, 3, 100]
    assert stored[1] == stored[3]


def test_core_reads_and_row_counts_inside_a_batch(
    db: Database, table: str, database_url: str
) -> None:
    """Jobs of one batch read through Core what earlier jobs wrote, and see row counts."""

    def count_rows(conn: Connection) -> tuple[int, int]:
        rows = conn.execute(text(f"SELECT n FROM {table} WHERE n < 100 ORDER BY n")).all()
        touched = conn.execute(text(f"UPDATE {table} SET tx = tx WHERE n < 100")).rowcount
        return len(rows), touched

    jobs = [_insert(table, 1), _insert(table, 2), count_rows, _insert(table, 3), count_rows]
    results = _batch_behind_a_slow_write(db, table, jobs)
    assert results == [1, 2, (2, 2), 3, (3, 3)]


def test_a_driver_level_insert_that_fails_later_is_still_pinned_on_its_job(
    db: Database, table: str, database_url: str
) -> None:
    """A statement run on the driver's cursor whose result nobody reads (as the hot inserts
    are) may report its failure only at a later statement; the failing job still fails alone."""

    def duplicate(conn: Connection) -> str:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.cursor().execute(f"INSERT INTO {table} (n, tx) VALUES (1, 0)")  # n=1 exists
        return "sent"

    jobs = [_insert(table, 1), duplicate, _insert(table, 3)]
    results = _batch_behind_a_slow_write(db, table, jobs)
    assert results[0] == 1 and results[2] == 3
    assert isinstance(results[1], Exception)
    stored = _stored(database_url, table)
    assert sorted(stored) == [1, 3, 100]
    assert stored[1] == stored[3] and stored[1] != 0
