"""Engines: the pool settings of each backend and SQLite's pragmas."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool
from sqlmodel import create_engine


def json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


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
            json_serializer=json_dumps,
            json_deserializer=orjson.loads,
            hide_parameters=True,  # bound values are patient data: never in an error
        )
        _configure_sqlite(engine, busy_timeout_ms)
        return engine
    # No pre-ping: it cost a round trip per checkout. A connection found broken when used
    # fails that one unit of work (a 503) and makes the pool drop every connection older
    # than it, so the next checkouts connect afresh (tests/test_outage.py).
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout_s,
        pool_recycle=1800,
        json_serializer=json_dumps,
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
