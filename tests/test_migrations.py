"""Migrations: upgrade → downgrade → upgrade on a scratch database, and no drift from models."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

import kap_outcomes.models  # noqa: F401
from kap_outcomes.migrate import alembic_config, downgrade, upgrade

from .conftest import PG_URL

TABLES = {
    "organisations",
    "api_tokens",
    "patients",
    "courses",
    "care_sessions",
    "assessments",
    "alerts",
    "policy_versions",
    "patient_summaries",
    "idempotency_records",
    "assessment_revisions",
    "smart_clients",
    "smart_jtis",
    "fhir_identifiers",
    "enrollment_codes",
    "audit_events",
    "events",
    "event_consumers",
    "signal_states",
    "webhook_endpoints",
    "webhook_deliveries",
    "webhook_attempts",
    "care_session_revisions",
    "patient_identifiers",
    "dashboard_signin_codes",
    "dashboard_sessions",
    "bulk_exports",
    "patient_groups",
    "patient_group_members",
}


@pytest.fixture
def scratch_url(tmp_path) -> Iterator[str]:
    """An empty database of the backend under test, dropped afterwards."""
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'scratch.db'}"
        return
    name = f"kap_scratch_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(scratch_url: str) -> None:
    upgrade(scratch_url)
    assert _tables(scratch_url) == TABLES
    downgrade(scratch_url, "base")
    assert _tables(scratch_url) == set()
    upgrade(scratch_url)
    assert _tables(scratch_url) == TABLES


def test_models_match_migrations(scratch_url: str) -> None:
    upgrade(scratch_url)
    engine = create_engine(scratch_url)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata
        )
    engine.dispose()
    assert diff == []


def test_alembic_check_finds_nothing(scratch_url: str) -> None:
    upgrade(scratch_url)
    command.check(alembic_config(scratch_url))  # raises when autogenerate would emit anything


def test_one_head() -> None:
    from alembic.script import ScriptDirectory

    assert len(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()) == 1


def test_assessments_recorded_before_versions_become_version_1(scratch_url: str) -> None:
    """The versioning migration keeps existing rows: version 1, final, recorded when first
    recorded."""
    upgrade(scratch_url, "c5b1a377af05")
    engine = create_engine(scratch_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO organisations VALUES ('o', 'o', '2026-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO patients VALUES ('p', 'o', 'x', '2026-01-01 00:00:00')"))
        conn.execute(
            text(
                "INSERT INTO assessments (id, organisation_id, patient_id, instrument, items,"
                " administered_at, recorded_at, source, valid, total, raw_total, prorated,"
                " missing_items, severity, subscores, flags) VALUES ('a', 'o', 'p', 'phq9',"
                " '[1,1,1,1,1,1,1,1,1]', '2026-01-02 00:00:00', '2026-01-03 00:00:00',"
                " 'clinician', true, 9, 9.0, false, 0, 'mild', '{}', '[]')"
            )
        )
    upgrade(scratch_url, "e1aea59ffe68")
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT version, status, version_at, recorded_at FROM assessments")
        ).one()
    engine.dispose()
    assert (row.version, row.status) == (1, "final")
    assert row.version_at == row.recorded_at
    downgrade(scratch_url, "base")


def test_downgrade_keeps_total_only_scores_as_forms(scratch_url: str) -> None:
    """A total-only score (items NULL) cannot exist before a7c3e9d1f2b4: the downgrade keeps it
    (and so the alert pointing at it) as a form with every item unanswered, item 9 in place."""
    upgrade(scratch_url)
    engine = create_engine(scratch_url)
    insert_assessment = (
        "INSERT INTO assessments (id, organisation_id, patient_id, instrument, items, item9,"
        " administered_at, recorded_at, source, valid, total, raw_total, prorated,"
        " missing_items, severity, subscores, flags, version, status, version_at)"
        " VALUES (:id, 'o', 'p', :instrument, NULL, :item9, '2026-01-02', '2026-01-03', 'ehr',"
        " true, 12, 12.0, false, 0, 'moderate', '{}', '[]', 1, 'final', '2026-01-03')"
    )
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO organisations (id, slug, created_at) VALUES ('o', 'o', '2026-01-01')")
        )
        conn.execute(
            text(
                "INSERT INTO patients (id, organisation_id, external_id, created_at)"
                " VALUES ('p', 'o', 'x', '2026-01-01')"
            )
        )
        for row in (
            {"id": "a", "instrument": "phq9", "item9": 2},
            {"id": "b", "instrument": "gad7", "item9": None},
        ):
            conn.execute(text(insert_assessment), row)
    downgrade(scratch_url, "fe721c237cac")
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT id, items FROM assessments")).all())
    engine.dispose()
    decoded = {k: v if isinstance(v, list) else json.loads(v) for k, v in rows.items()}
    assert decoded == {"a": [None] * 8 + [2], "b": [None] * 7}
