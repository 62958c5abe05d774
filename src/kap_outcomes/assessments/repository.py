"""All queries on assessments."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, or_, select, update

from kap_outcomes.assessments.models import Assessment, AssessmentRevision
from kap_outcomes.care.models import Course
from kap_outcomes.db import HotStatement
from kap_outcomes.patients.models import Patient
from kap_outcomes.rows import table_of

assessments = table_of(Assessment)
_patients = table_of(Patient)
_courses = table_of(Course)


_PATIENT_AND_ACTIVE_COURSE = HotStatement(
    select(_patients.c.id, _courses.c.id.label("course_id"))
    .select_from(_patients)
    .outerjoin(
        _courses,
        and_(_courses.c.patient_id == _patients.c.id, _courses.c.ended_at.is_(None)),
    )
    .where(
        _patients.c.id == bindparam("patient_id"),
        _patients.c.organisation_id == bindparam("organisation_id"),
    )
    .order_by(_courses.c.started_at.desc())
    .limit(1)
)
revisions = table_of(AssessmentRevision)

_REVISION_COLUMNS = [c.name for c in revisions.columns if c.name not in ("id", "assessment_id")]

_INSERT = HotStatement(insert(assessments), keys=[c.name for c in assessments.columns])


def patient_and_active_course(
    conn: Connection, *, organisation_id: str, patient_id: str
) -> tuple[bool, str | None]:
    """One round trip on the ingest path: does the patient exist here, and its active course."""
    row = _PATIENT_AND_ACTIVE_COURSE.first(
        conn, {"patient_id": patient_id, "organisation_id": organisation_id}
    )
    if row is None:
        return False, None
    return True, row[1]


def insert_assessment(conn: Connection, values: dict[str, Any]) -> None:
    """``values`` holds every column of the table."""
    _INSERT.run(conn, values)


def get(conn: Connection, *, organisation_id: str, assessment_id: str) -> Any | None:
    return conn.execute(
        select(assessments).where(
            assessments.c.id == assessment_id, assessments.c.organisation_id == organisation_id
        )
    ).first()


def page(
    conn: Connection,
    *,
    patient_id: str,
    instrument: str | None,
    since: datetime | None,
    until: datetime | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[Any]:
    """Newest first, keyset on (administered_at, id)."""
    query = select(assessments).where(assessments.c.patient_id == patient_id)
    if instrument is not None:
        query = query.where(assessments.c.instrument == instrument)
    if since is not None:
        query = query.where(assessments.c.administered_at >= since)
    if until is not None:
        query = query.where(assessments.c.administered_at <= until)
    if before is not None:
        at, row_id = before
        query = query.where(
            or_(
                assessments.c.administered_at < at,
                and_(assessments.c.administered_at == at, assessments.c.id < row_id),
            )
        )
    query = query.order_by(assessments.c.administered_at.desc(), assessments.c.id.desc())
    return list(conn.execute(query.limit(limit)).all())


def get_for_update(conn: Connection, *, organisation_id: str, assessment_id: str) -> Any | None:
    """The current version, locked until the transaction ends (PostgreSQL; SQLite's single
    writer serialises corrections anyway)."""
    return conn.execute(
        select(assessments)
        .where(
            assessments.c.id == assessment_id,
            assessments.c.organisation_id == organisation_id,
        )
        .with_for_update()
    ).first()


def keep_revision(conn: Connection, *, current: Any, revision_id: str) -> None:
    """Copy the current version, unchanged, into the history before it is superseded."""
    values = {name: getattr(current, name) for name in _REVISION_COLUMNS}
    conn.execute(insert(revisions).values(id=revision_id, assessment_id=current.id, **values))


def replace_current(
    conn: Connection, *, assessment_id: str, expected_version: int, values: dict[str, Any]
) -> bool:
    """Write the next version; False if another correction got there first."""
    result = conn.execute(
        update(assessments)
        .where(assessments.c.id == assessment_id, assessments.c.version == expected_version)
        .values(**values)
    )
    return result.rowcount == 1


def revisions_of(conn: Connection, *, assessment_id: str) -> list[Any]:
    return list(
        conn.execute(
            select(revisions)
            .where(revisions.c.assessment_id == assessment_id)
            .order_by(revisions.c.version)
        ).all()
    )
