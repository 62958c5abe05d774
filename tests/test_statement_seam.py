"""The fast statements (``db.statements.HotStatement``) are visible to SQLAlchemy's hooks:
a listener on the engine sees the ingest's SQL, ``echo`` logs it, and nobody watching keeps
the direct path."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Column, Integer, MetaData, String, Table, event, func, insert, select, text
from sqlalchemy.engine import Engine

from kap_outcomes.app import create_app
from kap_outcomes.auth.models import Role
from kap_outcomes.config import Settings
from kap_outcomes.db import Database, HotStatement, make_engine
from kap_outcomes.db.statements import observed

from .conftest import Tenant

PHQ9 = {"instrument": "phq9", "items": [1] * 9, "administered_at": "2026-03-02T15:04:05Z"}

Seen = list[tuple[str, str, Any, bool]]


@contextmanager
def watching(engine: Engine) -> Iterator[Seen]:
    """Every statement the engine's cursors run while inside, as (event, SQL, parameters,
    executemany)."""
    seen: Seen = []

    def before(_conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, many: bool):
        seen.append(("before", statement, params, many))

    def after(_conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, many: bool):
        seen.append(("after", statement, params, many))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


def _flat(params: Any) -> list[Any]:
    rows = params if isinstance(params, list) else [params]
    values: list[Any] = []
    for row in rows:
        values.extend(row.values() if isinstance(row, dict) else row)
    return values


def test_a_listener_on_the_engine_sees_the_ingest_s_statements(tenant: Tenant) -> None:
    pid = tenant.patient()
    engine = tenant.client.app.state.db.engine  # type: ignore[attr-defined]
    with watching(engine) as seen:
        resp = tenant.post(f"/v1/patients/{pid}/assessments", PHQ9)
    assert resp.status_code == 201, resp.text
    assessment_id = resp.json()["id"]

    before = [(sql, params, many) for kind, sql, params, many in seen if kind == "before"]
    after = [(sql, params, many) for kind, sql, params, many in seen if kind == "after"]
    assert before == after  # each statement announced, then reported done

    # the token lookup: its SELECT, with the SHA-256 of the bearer token as a parameter
    digest = hashlib.sha256(tenant.tokens[Role.clinician].encode()).hexdigest()
    lookups = [p for sql, p, _ in before if "FROM api_tokens" in sql and digest in _flat(p)]
    assert len(lookups) == 1, [sql for sql, _, _ in before]

    # the assessment's INSERT, once, with the id the API answered
    inserts = [
        (p, many) for sql, p, many in before if sql.lstrip().startswith("INSERT INTO assessments ")
    ]
    assert len(inserts) == 1, [sql for sql, _, _ in before]
    params, many = inserts[0]
    assert many is False
    assert assessment_id in _flat(params)
    assert pid in _flat(params)

    # the audit row, deferred to the commit (one row: reported as one execution, as Core does)
    audits = [p for sql, p, _ in before if sql.lstrip().startswith("INSERT INTO audit")]
    assert len(audits) == 1 and assessment_id in _flat(audits[0])


def test_run_many_fires_once_with_executemany(database_url: str) -> None:
    engine = make_engine(database_url)
    probe = Table(
        f"seam_probe_{uuid.uuid4().hex[:8]}",
        MetaData(),
        Column("n", Integer, primary_key=True),
        Column("label", String(20)),
        prefixes=["TEMPORARY"],
    )
    statement = HotStatement(insert(probe), keys=["n", "label"])
    rows = [{"n": n, "label": f"row {n}"} for n in range(1, 4)]
    try:
        with engine.connect() as conn:
            probe.create(conn)
            with watching(engine) as seen:
                statement.run_many(conn, rows)
            assert [(kind, many) for kind, _, _, many in seen] == [
                ("before", True),
                ("after", True),
            ]
            _, sql, params, _ = seen[0]
            assert sql.startswith(f"INSERT INTO {probe.name} ")
            assert len(params) == 3
            assert sorted(_flat(params), key=str) == sorted(
                [1, 2, 3, "row 1", "row 2", "row 3"], key=str
            )
            # the rows are stored, through the seam, as Core would store them
            assert conn.execute(select(func.count()).select_from(probe)).scalar_one() == 3
            # unobserved again: the direct path stores just as well
            assert not observed(conn)
            statement.run(conn, {"n": 4, "label": "row 4"})
            assert conn.execute(select(func.max(probe.c.n))).scalar_one() == 4
            conn.rollback()
    finally:
        engine.dispose()


def test_nobody_watching_keeps_the_direct_path(database_url: str) -> None:
    """The engines carry listeners of their own (SQLite's connect and begin): those do not
    count, only cursor-execution listeners and SQL logging do."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            assert not observed(conn)
            with watching(engine):
                assert observed(conn)
            assert not observed(conn)
        engine.echo = True
        with engine.connect() as conn:
            assert observed(conn)
    finally:
        engine.echo = False
        engine.dispose()


def test_echo_logs_the_ingest_s_insert_without_its_values(
    settings: Settings, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    pid = tenant.patient()
    app = create_app(settings)
    db: Database = app.state.db
    db.engine.echo = True
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    try:
        with TestClient(app, raise_server_exceptions=False) as http:
            resp = http.post(f"/v1/patients/{pid}/assessments", json=PHQ9, headers=tenant.headers())
            assert resp.status_code == 201, resp.text
    finally:
        db.engine.echo = False
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy.engine")]
    assert any(m.lstrip().startswith("INSERT INTO assessments ") for m in logged), logged
    assert any("FROM api_tokens" in m for m in logged), logged
    # bound values are patient data: the engines hide them
    everything = "\n".join(logged)
    assert resp.json()["id"] not in everything
    assert pid not in everything
    assert tenant.tokens[Role.clinician] not in everything
    with db.engine.connect() as conn:  # the app's own engine still answers
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
