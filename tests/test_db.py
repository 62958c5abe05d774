"""The embedded database's settings, and how a write waits for (or gives up on) the lock."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from kap_outcomes.app import create_app
from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import ensure_organisation, issue_token
from kap_outcomes.config import Settings
from kap_outcomes.db import Database, make_engine

from .conftest import PG_URL
from .migrated import migrated_sqlite

sqlite_only = pytest.mark.skipif(bool(PG_URL), reason="SQLite settings")


@sqlite_only
def test_sqlite_runs_in_wal_with_foreign_keys_and_durable_commits(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    engine.dispose()


def _app_and_token(tmp_path, busy_timeout_ms: int) -> tuple[str, Settings, str]:
    url = migrated_sqlite(tmp_path / "lock.db")
    db = Database(make_engine(url))
    token = db.run_write(
        lambda c: issue_token(c, organisation_id=ensure_organisation(c, "o"), role=Role.clinician)[
            1
        ]
    )
    db.dispose()
    return url, Settings(database_url=url, sqlite_busy_timeout_ms=busy_timeout_ms), token


def _hold_write_lock(path: str, release: threading.Event, seconds: float) -> threading.Thread:
    """Another connection holds the write lock until ``release`` is set, or ``seconds``."""
    ready = threading.Event()

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        ready.set()
        release.wait(seconds)
        other.execute("ROLLBACK")
        other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    ready.wait()
    return thread


@sqlite_only
def test_a_write_waits_for_another_process_lock_then_succeeds(tmp_path) -> None:
    url, settings, token = _app_and_token(tmp_path, busy_timeout_ms=3000)
    with TestClient(create_app(settings)) as client:
        holder = _hold_write_lock(url.removeprefix("sqlite:///"), threading.Event(), 0.5)
        resp = client.post(
            "/v1/patients",
            json={"external_id": "waited"},
            headers={"Authorization": f"Bearer {token}"},
        )
        holder.join()
    assert resp.status_code == 201


@sqlite_only
def test_a_lock_held_past_the_busy_timeout_is_503_with_retry_after(tmp_path) -> None:
    url, settings, token = _app_and_token(tmp_path, busy_timeout_ms=200)
    with TestClient(create_app(settings)) as client:
        # held for as long as the request runs: released only once its answer is back
        release = threading.Event()
        holder = _hold_write_lock(url.removeprefix("sqlite:///"), release, 30)
        resp = client.post(
            "/v1/patients",
            json={"external_id": "gave-up"},
            headers={"Authorization": f"Bearer {token}"},
        )
        release.set()
        holder.join()
        assert resp.status_code == 503
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.headers["retry-after"]
        # the writer recovers: the next write goes through
        again = client.post(
            "/v1/patients",
            json={"external_id": "after"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert again.status_code == 201


def test_new_ids_are_uuid7_and_time_ordered() -> None:
    import uuid

    from kap_outcomes.db import new_id

    first = new_id()
    time.sleep(0.002)
    second = new_id()
    parsed = uuid.UUID(first)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert first < second  # later milliseconds sort later
    assert len({new_id() for _ in range(10_000)}) == 10_000


def test_sqlite_timestamps_are_stored_exactly_as_sqlalchemy_stores_them() -> None:
    """UTCDateTime formats SQLite text itself (a fast path); it must match SQLAlchemy's own
    DATETIME text to the character, or comparisons and ordering would break."""
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy import DateTime
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    from kap_outcomes.db import UTCDateTime

    dialect = sqlite_dialect.dialect()
    ours = UTCDateTime().bind_processor(dialect)
    theirs = DateTime().dialect_impl(dialect).bind_processor(dialect)
    for value in [
        datetime(2026, 3, 2, 15, 4, 5, tzinfo=UTC),
        datetime(2026, 3, 2, 15, 4, 5, 123456, tzinfo=timezone(timedelta(hours=-5))),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]:
        assert ours(value) == theirs(value.astimezone(UTC).replace(tzinfo=None))
    with pytest.raises(ValueError):
        ours(datetime(2026, 1, 1))  # the point: a naive value is refused


def test_a_unit_of_work_that_fails_in_a_group_commit_runs_none_of_its_after_commit_callbacks(
    tmp_path,
) -> None:
    """Three writes in one batch, the middle one fails after asking for a callback: the two
    others commit and run theirs, the failed one's never runs (on PostgreSQL each write is a
    transaction of its own, so this is SQLite's group commit)."""
    import asyncio

    from kap_outcomes.db import after_commit

    db = Database(make_engine(f"sqlite:///{tmp_path / 'k.db'}"))
    ran: list[str] = []

    def work(name: str, fail: bool):
        def fn(conn):
            conn.execute(text("SELECT 1"))
            after_commit(conn, lambda: ran.append(name))
            if fail:
                raise ValueError(name)
            return name

        return fn

    async def main():
        return await asyncio.gather(
            db.write(work("first", False)),
            db.write(work("failed", True)),
            db.write(work("last", False)),
            return_exceptions=True,
        )

    try:
        results = asyncio.run(main())
    finally:
        db.dispose()
    assert results[0] == "first" and results[2] == "last"
    assert isinstance(results[1], ValueError)
    assert sorted(ran) == ["first", "last"]
