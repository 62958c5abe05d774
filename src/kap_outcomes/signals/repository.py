"""All queries of the read side: what the rules need of one patient, or of many at once.

`patients` is one patient id or a list of ids (the caseload passes its stale patients): loading
many patients costs the same few statements as loading one, never one each. An explicit list
rather than a subquery, so that the planner knows how many rows to expect whatever its
statistics say about the stale flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, true, update
from sqlalchemy.sql import Select

from kap_outcomes.alerts.models import Alert, AlertStatus
from kap_outcomes.assessments.models import Assessment, AssessmentStatus
from kap_outcomes.care.models import DOSE_KINDS, CareSession, Course, SessionStatus
from kap_outcomes.signals.models import SignalState

_assessments = Assessment.__table__  # type: ignore[attr-defined]
_courses = Course.__table__  # type: ignore[attr-defined]
_sessions = CareSession.__table__  # type: ignore[attr-defined]
_alerts = Alert.__table__  # type: ignore[attr-defined]

_SCORED = ("phq9", "gad7")
_DOSE_KINDS = sorted(k.value for k in DOSE_KINDS)

Patients = str | Sequence[str]
"""One patient id, or a list of them."""


# --- one patient or the organisation's stale patients -----------------------------------


def active_courses(conn: Connection, *, patients: Patients) -> list[Any]:
    """Active courses (latest started first) of one patient, or of an organisation's stale."""
    query = select(
        _courses.c.id, _courses.c.patient_id, _courses.c.induction_doses, _courses.c.started_at
    ).where(_courses.c.ended_at.is_(None))
    query = _for(query, _courses.c.patient_id, patients)
    return list(conn.execute(query.order_by(_courses.c.started_at.desc(), _courses.c.id)).all())


def dose_times(conn: Connection, *, patients: Patients) -> list[Any]:
    """(patient_id, course_id, occurred_at) of the doses (dosing, booster) of the patients:
    the current version of each session that was not retracted (clinical-rules.md section 8).
    Callers keep those of the active course (they have loaded it already).

    No join with the courses: without planner statistics (after a bulk load, before ANALYZE)
    PostgreSQL planned the join as a nested loop scanning every session once per course,
    5 s for 500 patients; by patient id alone it is one index range per patient.
    """
    query = select(_sessions.c.patient_id, _sessions.c.course_id, _sessions.c.occurred_at).where(
        _sessions.c.kind.in_(_DOSE_KINDS),
        _sessions.c.status != SessionStatus.entered_in_error.value,
        _sessions.c.course_id.is_not(None),
    )
    query = _for(query, _sessions.c.patient_id, patients)
    return list(conn.execute(query).all())


def valid_scores(
    conn: Connection,
    *,
    patients: Patients,
    instrument: str | None = None,
) -> list[Any]:
    """Valid PHQ-9 / GAD-7 totals, oldest first: the latest version of each assessment that
    was not retracted (invalid forms never take part)."""
    a = _assessments.c
    query = select(
        a.id, a.patient_id, a.course_id, a.instrument, a.administered_at, a.total, a.severity
    ).where(
        a.valid == true(),
        a.total.is_not(None),
        a.status != AssessmentStatus.entered_in_error.value,  # retracted: out of every signal
    )
    query = query.where(a.instrument == instrument if instrument else a.instrument.in_(_SCORED))
    query = _for(query, a.patient_id, patients)
    return list(conn.execute(query.order_by(a.patient_id, a.administered_at, a.id)).all())


def latest_valid_scores(
    conn: Connection, *, patient_id: str, instrument: str, limit: int
) -> list[Any]:
    """The last ``limit`` valid totals of one instrument of one patient, newest first (the
    rows ``valid_scores`` gives last): read backwards along the patient's index."""
    a = _assessments.c
    query = (
        _valid_score_columns()
        .where(a.patient_id == patient_id, a.instrument == instrument)
        .order_by(a.administered_at.desc(), a.id.desc())
        .limit(limit)
    )
    return list(conn.execute(query).all())


def valid_scores_since(conn: Connection, *, patient_id: str, since: datetime) -> list[Any]:
    """One patient's valid PHQ-9 / GAD-7 totals taken at or after ``since``, oldest first."""
    a = _assessments.c
    query = _valid_score_columns().where(
        a.patient_id == patient_id, a.instrument.in_(_SCORED), a.administered_at >= since
    )
    return list(conn.execute(query.order_by(a.administered_at, a.id)).all())


def _valid_score_columns() -> Select[Any]:
    a = _assessments.c
    return select(
        a.id, a.patient_id, a.course_id, a.instrument, a.administered_at, a.total, a.severity
    ).where(
        a.valid == true(),
        a.total.is_not(None),
        a.status != AssessmentStatus.entered_in_error.value,
    )


def unresolved_alerts(conn: Connection, *, patients: Patients) -> list[Any]:
    """(patient_id, level, status, count) of alerts not yet resolved."""
    query = (
        select(_alerts.c.patient_id, _alerts.c.level, _alerts.c.status, func.count())
        .where(_alerts.c.status != AlertStatus.resolved.value)
        .group_by(_alerts.c.patient_id, _alerts.c.level, _alerts.c.status)
    )
    query = _for(query, _alerts.c.patient_id, patients)
    return list(conn.execute(query).all())


def _for(query: Select[Any], column: Any, patients: Patients) -> Any:
    if isinstance(patients, str):
        return query.where(column == patients)
    return query.where(column.in_(list(patients)))


# --- the signal watch's last seen state ---------------------------------------------------

_states = SignalState.__table__  # type: ignore[attr-defined]


def signal_states(conn: Connection, *, patient_ids: Sequence[str]) -> dict[str, Any]:
    if not patient_ids:
        return {}
    rows = conn.execute(select(_states).where(_states.c.patient_id.in_(list(patient_ids)))).all()
    return {row.patient_id: row for row in rows}


def save_signal_state(conn: Connection, *, values: dict[str, Any], exists: bool) -> None:
    if exists:
        conn.execute(
            update(_states).where(_states.c.patient_id == values["patient_id"]).values(values)
        )
    else:
        conn.execute(insert(_states).values(values))
