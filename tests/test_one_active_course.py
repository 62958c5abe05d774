"""At most one active course per patient, held by the database itself (every backend)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, select
from sqlalchemy.exc import IntegrityError

from kap_outcomes.auth.models import Organisation
from kap_outcomes.care.models import Course
from kap_outcomes.db import Database, new_id
from kap_outcomes.migrate import upgrade
from kap_outcomes.patients.models import Patient

from .conftest import Tenant
from .test_migrations import scratch_url  # noqa: F401 - the fixture

courses = Course.__table__  # type: ignore[attr-defined]
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _course(org: str, patient: str, started: datetime, ended: datetime | None = None) -> Any:
    return {
        "id": new_id(),
        "organisation_id": org,
        "patient_id": patient,
        "label": None,
        "induction_doses": 6,
        "started_at": started,
        "ended_at": ended,
        "created_at": started,
    }


def test_the_database_refuses_a_second_active_course(tenant: Tenant, db: Database) -> None:
    patient_id = tenant.patient()
    first = _course(tenant.org_id, patient_id, T0)
    db.run_write(lambda conn: conn.execute(insert(courses).values(**first)))
    with pytest.raises(IntegrityError):
        db.run_write(
            lambda conn: conn.execute(
                insert(courses).values(**_course(tenant.org_id, patient_id, T0 + timedelta(1)))
            )
        )
    # ended courses are not limited
    ended = _course(tenant.org_id, patient_id, T0 - timedelta(30), T0)
    db.run_write(lambda conn: conn.execute(insert(courses).values(**ended)))


def test_the_migration_closes_all_but_the_latest_active_course(scratch_url: str) -> None:  # noqa: F811
    upgrade(scratch_url, "e1aea59ffe68")  # before the index
    engine = create_engine(scratch_url)
    org, patient, other = new_id(), new_id(), new_id()
    with engine.begin() as conn:
        conn.execute(insert(Organisation.__table__).values(id=org, slug="o", created_at=T0))
        for pid, ext in ((patient, "a"), (other, "b")):
            conn.execute(
                insert(Patient.__table__).values(
                    id=pid, organisation_id=org, external_id=ext, created_at=T0
                )
            )
    db = Database(engine)
    rows = [_course(org, patient, T0 + timedelta(days=d)) for d in (0, 2, 1)]
    rows.append(_course(org, other, T0))
    db.run_write(lambda conn: conn.execute(insert(courses), rows))
    db.dispose()

    upgrade(scratch_url)
    engine = create_engine(scratch_url)
    db = Database(engine)
    stored = db.run_read(
        lambda conn: {
            r.id: r.ended_at for r in conn.execute(select(courses.c.id, courses.c.ended_at))
        }
    )
    db.dispose()
    latest, other_course = rows[1]["id"], rows[3]["id"]
    assert stored[latest] is None and stored[other_course] is None
    closed = [stored[r["id"]] for r in (rows[0], rows[2])]
    assert closed == [rows[1]["created_at"]] * 2  # when the newest course was created
