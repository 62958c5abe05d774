"""All queries on assessments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, select

from kap_outcomes.assessments.models import Assessment, AssessmentRevision
from kap_outcomes.care.models import Course
from kap_outcomes.db import HotStatement
from kap_outcomes.patients.models import Patient
from kap_outcomes.rows import before_key, every, table_of
from kap_outcomes.versions import Versioned

assessments = table_of(Assessment)
_patients = table_of(Patient)
_courses = table_of(Course)
versioned = Versioned(Assessment, AssessmentRevision, "assessment_id")


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
    course_id: str | None = row[1]
    return True, course_id


def insert_assessment(conn: Connection, values: dict[str, Any]) -> None:
    """``values`` holds every column of the table."""
    _INSERT.run(conn, values)


def get(conn: Connection, *, organisation_id: str, assessment_id: str) -> Assessment | None:
    return versioned.get(conn, organisation_id=organisation_id, id=assessment_id)


def page(
    conn: Connection,
    *,
    patient_id: str,
    instrument: str | None,
    since: datetime | None,
    until: datetime | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[Assessment]:
    """Newest first, keyset on (administered_at, id)."""
    query = select(assessments).where(assessments.c.patient_id == patient_id)
    if instrument is not None:
        query = query.where(assessments.c.instrument == instrument)
    if since is not None:
        query = query.where(assessments.c.administered_at >= since)
    if until is not None:
        query = query.where(assessments.c.administered_at <= until)
    query = before_key(query, assessments.c.administered_at, assessments.c.id, before)
    return every(conn, Assessment, query.limit(limit))


def versions_of(
    conn: Connection, *, organisation_id: str, patient_id: str, assessment_ids: Sequence[str]
) -> dict[str, list[Assessment | AssessmentRevision]]:
    """Every version of each of the patient's named assessments, the kept revisions then the
    current one, oldest first: two statements however many assessments (not two each)."""
    if not assessment_ids:
        return {}
    current = every(
        conn,
        Assessment,
        select(assessments).where(
            assessments.c.id.in_(assessment_ids),
            assessments.c.organisation_id == organisation_id,
            assessments.c.patient_id == patient_id,
        ),
    )
    revisions = table_of(AssessmentRevision)
    kept = every(
        conn,
        AssessmentRevision,
        select(revisions)
        .where(revisions.c.assessment_id.in_([row.id for row in current]))
        .order_by(revisions.c.assessment_id, revisions.c.version),
    )
    versions: dict[str, list[Assessment | AssessmentRevision]] = {row.id: [] for row in current}
    for revision in kept:
        versions[revision.assessment_id].append(revision)
    for row in current:
        versions[row.id].append(row)
    return versions
