"""Trends and signals: stored data in, clinical/ functions, contract shapes out.

Trends and signals of one patient are computed on read (a handful of indexed queries, then
the pure rules), so they always reflect the data and the policy in force. The caseload
(caseload/) applies the same functions to many patients at once.

What "open" means for safety: an alert counts until it is resolved. Acknowledging says that
someone has seen it, not that the risk has been dealt with (clinical-rules.md section 2:
safety is never suppressed), so an acknowledged alert still sets `safety.level` and keeps the
patient at the top of the caseload; `unacknowledged_alerts` tells the two apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

from sqlalchemy import Connection

from kap_outcomes.alerts.models import AlertStatus
from kap_outcomes.auth.service import Principal
from kap_outcomes.clinical.booster import BoosterSignal, booster_signal
from kap_outcomes.clinical.cadence import phq9_due
from kap_outcomes.clinical.change import change_metrics, course_baseline, episode_outcome
from kap_outcomes.clinical.points import ScorePoint
from kap_outcomes.clinical.policy import Instrument, Policy
from kap_outcomes.clinical.safety import AlertLevel, highest_level
from kap_outcomes.clinical.trend import ewma, trend
from kap_outcomes.db import utcnow
from kap_outcomes.organisation import service as organisation_service
from kap_outcomes.patients.service import require_patient
from kap_outcomes.policy import service as policy_service
from kap_outcomes.signals import repository
from kap_outcomes.signals.models import (
    BoosterPublic,
    ChangePublic,
    MeasurementPublic,
    ReasonPublic,
    SafetyPublic,
    ScoreRef,
    SignalsPublic,
    TrendInstrument,
    TrendLine,
    TrendPoint,
    TrendPublic,
)

"""Most urgent first."""


@dataclass
class PatientData:
    """What the rules need of one patient, loaded by a fixed number of queries."""

    course: repository.ActiveCourse | None = None
    doses: list[datetime] = field(default_factory=list)
    scores: dict[str, list[repository.ValidScore]] = field(
        default_factory=lambda: {"phq9": [], "gad7": []}
    )
    alerts: list[repository.UnresolvedAlerts] = field(default_factory=list)


# --- loading ----------------------------------------------------------------------------


def _load(conn: Connection, *, patient_id: str) -> PatientData:
    data = PatientData()
    courses = repository.active_courses(conn, patients=patient_id)
    data.course = courses[0] if courses else None
    if data.course is not None:
        data.doses = [
            r.occurred_at
            for r in repository.dose_times(conn, patients=patient_id)
            if r.course_id == data.course.id
        ]
    for row in repository.valid_scores(conn, patients=patient_id):
        data.scores[row.instrument].append(row)
    data.alerts = repository.unresolved_alerts(conn, patients=patient_id)
    return data


LOAD_CHUNK = 5000
"""Patients per batch of the bulk load (SQLite allows 32,766 bound values per statement)."""


def load_many(conn: Connection, *, patient_ids: Sequence[str]) -> dict[str, PatientData]:
    """The data of many patients: four queries per 5,000 patients, never one per patient."""
    out: dict[str, PatientData] = {}
    for start in range(0, len(patient_ids), LOAD_CHUNK):
        _load_chunk(conn, patient_ids[start : start + LOAD_CHUNK], out)
    return out


def _load_chunk(conn: Connection, patients: Sequence[str], out: dict[str, PatientData]) -> None:
    for course in repository.active_courses(conn, patients=patients):
        data = out.setdefault(course.patient_id, PatientData())
        if data.course is None:  # latest started first
            data.course = course
    for dose in repository.dose_times(conn, patients=patients):
        holder = out.get(dose.patient_id)
        if holder is not None and holder.course is not None and holder.course.id == dose.course_id:
            holder.doses.append(dose.occurred_at)
    for score in repository.valid_scores(conn, patients=patients):
        out.setdefault(score.patient_id, PatientData()).scores[score.instrument].append(score)
    for alerts in repository.unresolved_alerts(conn, patients=patients):
        out.setdefault(alerts.patient_id, PatientData()).alerts.append(alerts)


# --- the rules, applied -----------------------------------------------------------------


def _points(rows: Iterable[Any]) -> list[ScorePoint]:
    return [ScorePoint(r.id, r.administered_at, r.total) for r in rows]


def _baseline(data: PatientData, instrument: str, policy: Policy) -> ScorePoint | None:
    """clinical-rules.md section 3: from the first dose of the active course when there is
    one (any of the patient's scores), else the first score (of the course, if any)."""
    rows = data.scores[instrument]
    first_dose = min(data.doses) if data.doses else None
    if first_dose is None and data.course is not None:
        rows = [r for r in rows if r.course_id == data.course.id]
    return course_baseline(_points(rows), first_dose_at=first_dose, policy=policy)


def _induction_doses(data: PatientData, policy: Policy) -> int:
    return int(data.course.induction_doses) if data.course is not None else policy.induction_doses


def booster(
    data: PatientData, instrument: str, now: datetime, policy: Policy, zone: tzinfo = UTC
) -> BoosterSignal:
    """Section 5 for the active course: the PHQ-9 status, or its GAD-7 analogue; the dates in
    its reasons are calendar dates in ``zone`` (the organisation's, section 8)."""
    scores = _points(data.scores[instrument])
    common: dict[str, Any] = {
        "dose_times": data.doses,
        "induction_doses": _induction_doses(data, policy),
        "baseline": _baseline(data, instrument, policy),
        "now": now,
        "policy": policy,
        "zone": zone,
    }
    named: Instrument = "phq9" if instrument == "phq9" else "gad7"
    return booster_signal(scores=scores, instrument=named, **common)


def induction_completed_at(data: PatientData, policy: Policy) -> datetime | None:
    needed = _induction_doses(data, policy)
    doses = sorted(data.doses)
    return doses[needed - 1] if len(doses) >= needed else None


def safety(alerts: Sequence[repository.UnresolvedAlerts]) -> SafetyPublic:
    unresolved = sum(r.n for r in alerts)
    unacknowledged = sum(r.n for r in alerts if r.status == AlertStatus.open.value)
    highest = highest_level(AlertLevel(r.level) for r in alerts)
    level = "none" if highest is None else highest.value
    return SafetyPublic(level=level, open_alerts=unresolved, unacknowledged_alerts=unacknowledged)


def _booster_public(signal: BoosterSignal) -> BoosterPublic:
    return BoosterPublic(
        status=signal.status,
        reasons=[ReasonPublic(code=r.code, detail=r.detail) for r in signal.reasons],
        baseline=signal.baseline,
        nadir=signal.nadir,
        latest=signal.latest,
        days_since_last_dose=signal.days_since_last_dose,
        scores_used=[_ref(s) for s in signal.scores_used],
    )


def _ref(point: ScorePoint) -> ScoreRef:
    return ScoreRef(
        assessment_id=point.assessment_id, administered_at=point.administered_at, total=point.total
    )


# --- use cases --------------------------------------------------------------------------


def get_signals(conn: Connection, *, principal: Principal, patient_id: str) -> SignalsPublic:
    require_patient(conn, principal=principal, patient_id=patient_id)
    version, policy = policy_service.current_policy(conn, organisation_id=principal.organisation_id)
    data = _load(conn, patient_id=patient_id)
    zone = organisation_service.clinic_zone(conn, organisation_id=principal.organisation_id)
    now = utcnow()
    phq9 = data.scores["phq9"]
    due, days_since = phq9_due(
        induction_completed_at=induction_completed_at(data, policy),
        last_phq9_at=phq9[-1].administered_at if phq9 else None,
        now=now,
        policy=policy,
    )
    return SignalsPublic(
        patient_id=patient_id,
        course_id=data.course.id if data.course is not None else None,
        booster=_booster_public(booster(data, "phq9", now, policy, zone)),
        gad7_booster=_booster_public(booster(data, "gad7", now, policy, zone)),
        safety=safety(data.alerts),
        measurement=MeasurementPublic(phq9_due=due, days_since_last_phq9=days_since),
        policy_version=version,
        computed_at=now,
    )


def _episode(data: PatientData, policy: Policy) -> tuple[bool | None, bool | None]:
    """clinical-rules.md section 3 for the course: the first of the pair is each instrument's
    course baseline, the latest its latest valid score; null where either is missing."""
    ends: dict[str, tuple[int | None, int | None]] = {}
    for name in ("phq9", "gad7"):
        first = _baseline(data, name, policy)
        rows = data.scores[name]
        ends[name] = (
            first.total if first is not None else None,
            rows[-1].total if rows and first is not None else None,
        )
    return episode_outcome(*ends["phq9"], *ends["gad7"], policy)


def get_trend(
    conn: Connection, *, principal: Principal, patient_id: str, instrument: TrendInstrument
) -> TrendPublic:
    require_patient(conn, principal=principal, patient_id=patient_id)
    version, policy = policy_service.current_policy(conn, organisation_id=principal.organisation_id)
    data = _load(conn, patient_id=patient_id)
    rows = data.scores[instrument.value]
    baseline = _baseline(data, instrument.value, policy)
    latest = _points(rows[-1:])[0] if rows else None
    change = None
    if baseline is not None and latest is not None:
        metrics = change_metrics(instrument.value, baseline.total, latest.total, policy)
        change = ChangePublic.model_validate(metrics, from_attributes=True)
    line = trend(instrument.value, _points(rows), policy)
    smoothed = ewma([r.total for r in rows], policy.ewma_alpha)
    recovery, reliable_recovery = _episode(data, policy)
    return TrendPublic(
        instrument=instrument,
        baseline=_ref(baseline) if baseline is not None else None,
        latest=_ref(latest) if latest is not None else None,
        change=change,
        recovery=recovery,
        reliable_recovery=reliable_recovery,
        trend=TrendLine.model_validate(line, from_attributes=True),
        points=[
            TrendPoint(
                assessment_id=r.id,
                administered_at=r.administered_at,
                total=r.total,
                severity=r.severity,
                smoothed=s,
            )
            for r, s in zip(rows, smoothed, strict=True)
        ],
        policy_version=version,
    )


def trend_label(data: PatientData, instrument: Literal["phq9", "gad7"], policy: Policy) -> str:
    """Section 4's label of the instrument's scores (what ``get_trend`` reports)."""
    return trend(instrument, _points(data.scores[instrument]), policy).label
