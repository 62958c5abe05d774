"""All queries of the read side: what the rules need of one patient, or of many at once.

`patients` is one patient id or a list of ids (the caseload passes its stale patients): loading
many patients costs the same few statements as loading one, never one each. An explicit list
rather than a subquery, so that the planner knows how many rows to expect whatever its
statistics say about the stale flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVarTuple

from sqlalchemy import ColumnElement, Connection, func, insert, select, true, update
from sqlalchemy.sql import Select

from kap_outcomes.alerts.models import Alert, AlertStatus
from kap_outcomes.assessments.models import Assessment, AssessmentStatus
from kap_outcomes.care.models import DOSE_KINDS, CareSession, Course, SessionStatus
from kap_outcomes.rows import every, table_of
from kap_outcomes.signals.models import SignalState

_assessments = table_of(Assessment)
_courses = table_of(Course)
_sessions = table_of(CareSession)
_alerts = table_of(Alert)

_SCORED = ("phq9", "gad7")
_DOSE_KINDS = sorted(k.value for k in DOSE_KINDS)

Ts = TypeVarTuple("Ts")

Patients = str | Sequence[str]
"""One patient id, or a list of them."""


# --- one patient or the organisation's stale patients -----------------------------------


class ActiveCourse(NamedTuple):
    id: str
    patient_id: str
    induction_doses: int
    started_at: datetime


class DoseTime(NamedTuple):
    patient_id: str
    course_id: str
    occurred_at: datetime


class ValidScore(NamedTuple):
    id: str
    patient_id: str
    course_id: str | None
    instrument: str
    administered_at: datetime
    total: int
    severity: str | None


class UnresolvedAlerts(NamedTuple):
    patient_id: str
    level: str
    status: str
    n: int


def active_courses(conn: Connection, *, patients: Patients) -> list[ActiveCourse]:
    """Active courses (latest started first) of one patient, or of an organisation's stale."""
    query = select(*(_courses.c[name] for name in ActiveCourse._fields)).where(
        _courses.c.ended_at.is_(None)
    )
    query = _for(query, _courses.c.patient_id, patients)
    rows = conn.execute(query.order_by(_courses.c.started_at.desc(), _courses.c.id))
    return [ActiveCourse._make(row) for row in rows]


def dose_times(conn: Connection, *, patients: Patients) -> list[DoseTime]:
    """(patient_id, course_id, occurred_at) of the doses (dosing, booster) of the patients:
    the current version of each session that was not retracted (clinical-rules.md section 8).
    Callers keep those of the active course (they have loaded it already).

    No join with the courses: without planner statistics (after a bulk load, before ANALYZE)
    PostgreSQL planned the join as a nested loop scanning every session once per course,
    5 s for 500 patients; by patient id alone it is one index range per patient.
    """
    query = select(*(_sessions.c[name] for name in DoseTime._fields)).where(
        _sessions.c.kind.in_(_DOSE_KINDS),
        _sessions.c.status != SessionStatus.entered_in_error.value,
        _sessions.c.course_id.is_not(None),
    )
    query = _for(query, _sessions.c.patient_id, patients)
    return [DoseTime._make(row) for row in conn.execute(query)]


def _valid_score_rows() -> Select[Any]:
    """The ``ValidScore`` columns of the latest version of each assessment that was not
    retracted (invalid forms never take part)."""
    a = _assessments.c
    return select(*(_assessments.c[name] for name in ValidScore._fields)).where(
        a.valid == true(),
        a.total.is_not(None),
        a.status != AssessmentStatus.entered_in_error.value,  # retracted: out of every signal
    )


def valid_scores(
    conn: Connection,
    *,
    patients: Patients,
    instrument: str | None = None,
) -> list[ValidScore]:
    """Valid PHQ-9 / GAD-7 totals, oldest first."""
    a = _assessments.c
    query = _valid_score_rows()
    query = query.where(a.instrument == instrument if instrument else a.instrument.in_(_SCORED))
    query = _for(query, a.patient_id, patients)
    rows = conn.execute(query.order_by(a.patient_id, a.administered_at, a.id))
    return [ValidScore._make(row) for row in rows]


def latest_valid_scores(
    conn: Connection, *, patient_id: str, instrument: str, limit: int
) -> list[ValidScore]:
    """The last ``limit`` valid totals of one instrument of one patient, newest first (the
    rows ``valid_scores`` gives last): read backwards along the patient's index."""
    a = _assessments.c
    query = (
        _valid_score_rows()
        .where(a.patient_id == patient_id, a.instrument == instrument)
        .order_by(a.administered_at.desc(), a.id.desc())
        .limit(limit)
    )
    return [ValidScore._make(row) for row in conn.execute(query)]


def valid_scores_since(conn: Connection, *, patient_id: str, since: datetime) -> list[ValidScore]:
    """One patient's valid PHQ-9 / GAD-7 totals taken at or after ``since``, oldest first."""
    a = _assessments.c
    query = _valid_score_rows().where(
        a.patient_id == patient_id, a.instrument.in_(_SCORED), a.administered_at >= since
    )
    return [ValidScore._make(row) for row in conn.execute(query.order_by(a.administered_at, a.id))]


def unresolved_alerts(conn: Connection, *, patients: Patients) -> list[UnresolvedAlerts]:
    """(patient_id, level, status, count) of alerts not yet resolved."""
    query = (
        select(_alerts.c.patient_id, _alerts.c.level, _alerts.c.status, func.count())
        .where(_alerts.c.status != AlertStatus.resolved.value)
        .group_by(_alerts.c.patient_id, _alerts.c.level, _alerts.c.status)
    )
    query = _for(query, _alerts.c.patient_id, patients)
    return [UnresolvedAlerts._make(row) for row in conn.execute(query)]


def _for(query: Select[*Ts], column: ColumnElement[Any], patients: Patients) -> Select[*Ts]:
    if isinstance(patients, str):
        return query.where(column == patients)
    return query.where(column.in_(list(patients)))


# --- the signal watch's last seen state ---------------------------------------------------

_states = table_of(SignalState)


def signal_states(conn: Connection, *, patient_ids: Sequence[str]) -> dict[str, SignalState]:
    if not patient_ids:
        return {}
    query = select(_states).where(_states.c.patient_id.in_(list(patient_ids)))
    return {row.patient_id: row for row in every(conn, SignalState, query)}


def save_signal_state(conn: Connection, *, values: dict[str, Any], exists: bool) -> None:
    if exists:
        conn.execute(
            update(_states).where(_states.c.patient_id == values["patient_id"]).values(values)
        )
    else:
        conn.execute(insert(_states).values(values))
