"""The bulk reads of the reports: a few statements per report, whatever the cohort's size.

Each report reads one organisation's rows with a handful of set-based statements (never one
per course or per patient); bench/reports.py compares them with a plain query of the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Subquery, and_, func, select, true

from kap_outcomes.assessments.models import Assessment, AssessmentStatus
from kap_outcomes.care.models import DOSE_KINDS, CareSession, Course
from kap_outcomes.patients.models import Patient
from kap_outcomes.rows import table_of

_assessments = table_of(Assessment)
_courses = table_of(Course)
_sessions = table_of(CareSession)
_patients = table_of(Patient)

_DOSE_KINDS = sorted(k.value for k in DOSE_KINDS)
STREAM_ROWS = 2000
"""Rows fetched at a time from a report's largest statement."""


def _cohort(organisation_id: str, first_from: datetime, first_before: datetime) -> Subquery:
    """(course_id, first_dose_at) of the courses whose first dose is in [from, before)."""
    s = _sessions.c
    return (
        select(s.course_id.label("course_id"), func.min(s.occurred_at).label("first_dose_at"))
        .where(
            s.organisation_id == organisation_id,
            s.kind.in_(_DOSE_KINDS),
            s.course_id.is_not(None),
        )
        .group_by(s.course_id)
        .having(and_(func.min(s.occurred_at) >= first_from, func.min(s.occurred_at) < first_before))
        .subquery("cohort")
    )


def _valid(instrument: str) -> ColumnElement[bool]:
    a = _assessments.c
    return and_(
        a.instrument == instrument,
        a.valid == true(),
        a.total.is_not(None),
        a.status != AssessmentStatus.entered_in_error.value,
    )


def cohort_rows(
    conn: Connection,
    *,
    organisation_id: str,
    instrument: str,
    first_from: datetime,
    first_before: datetime,
) -> tuple[list[Any], list[Any], Iterator[Any]]:
    """The cohort's courses (id, patient_id, induction_doses, ended_at), every dose of them
    (course_id, occurred_at, kind, dose_route), and the valid scores of their patients
    (patient_id, id, administered_at, total; streamed in batches): three statements."""
    cohort = _cohort(organisation_id, first_from, first_before)
    a, c, s = _assessments.c, _courses.c, _sessions.c
    in_cohort = _courses.join(cohort, cohort.c.course_id == c.id)
    courses = (
        select(c.id, c.patient_id, c.induction_doses, c.ended_at)
        .select_from(in_cohort)
        .where(c.organisation_id == organisation_id)
        .order_by(c.id)
    )
    doses = (
        select(s.course_id, s.occurred_at, s.kind, s.dose_route)
        .select_from(_sessions.join(cohort, cohort.c.course_id == s.course_id))
        .where(s.organisation_id == organisation_id, s.kind.in_(_DOSE_KINDS))
    )
    patients = select(c.patient_id).select_from(in_cohort).scalar_subquery()
    scores = select(a.patient_id, a.id, a.administered_at, a.total).where(
        a.organisation_id == organisation_id, _valid(instrument), a.patient_id.in_(patients)
    )
    return (
        list(conn.execute(courses).all()),
        list(conn.execute(doses).all()),
        iter(conn.execution_options(yield_per=STREAM_ROWS).execute(scores)),
    )


def cms159_rows(
    conn: Connection, *, organisation_id: str, scores_from: datetime, scores_before: datetime
) -> Iterator[Any]:
    """(patient_id, age_group, conditions, id, administered_at, total): every valid PHQ-9 of
    the organisation in [from, before) with its patient's recorded age group and conditions,
    in one statement, streamed in batches."""
    a, p = _assessments.c, _patients.c
    query = (
        select(
            p.id.label("patient_id"), p.age_group, p.conditions, a.id, a.administered_at, a.total
        )
        .select_from(_assessments.join(_patients, p.id == a.patient_id))
        .where(
            a.organisation_id == organisation_id,
            p.organisation_id == organisation_id,
            _valid("phq9"),
            a.administered_at >= scores_from,
            a.administered_at < scores_before,
        )
    )
    yield from conn.execution_options(yield_per=STREAM_ROWS).execute(query)
