"""Use cases on assessments: validate, score, check safety, store, read back.

Safety is evaluated on every submission before anything else, and its alerts are written in
the same transaction as the assessment (clinical-rules.md section 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from kap_outcomes.alerts import service as alerts_service
from kap_outcomes.assessments import repository
from kap_outcomes.assessments.models import (
    AssessmentCreate,
    AssessmentPublic,
    AssessmentStatus,
    Source,
)
from kap_outcomes.audit import service as audit
from kap_outcomes.auth.service import Principal
from kap_outcomes.care import repository as care_repository
from kap_outcomes.clinical.instruments import Instrument, item_problems
from kap_outcomes.clinical.safety import AlertTrigger, evaluate_safety, evaluate_total_safety
from kap_outcomes.clinical.scoring import Score, score, score_total, total_problems
from kap_outcomes.db import new_id, utcnow
from kap_outcomes.errors import FieldProblem, invalid, not_found
from kap_outcomes.events.models import EventType
from kap_outcomes.events.outbox import emit_about
from kap_outcomes.pagination import Page, cut, decode_cursor
from kap_outcomes.patients.service import require_patient
from kap_outcomes.versions import first_version


def check_items(instrument: Instrument, items: list[int | None], difficulty: int | None) -> None:
    """Count and range of the items for the instrument; 422 with a pointer per problem."""
    problems = item_problems(instrument, items)
    if problems:
        raise invalid(
            [
                FieldProblem(pointer="/items" if i is None else f"/items/{i}", detail=detail)
                for i, detail in problems
            ]
        )
    if difficulty is not None and instrument is not Instrument.PHQ9:
        raise invalid(
            [FieldProblem(pointer="/difficulty", detail="only the PHQ-9 has a difficulty item")]
        )


@dataclass(frozen=True, slots=True)
class Scored:
    """What scoring and safety made of a submission (a form or a total-only score)."""

    items: list[int | None] | None
    item9: int | None
    result: Score
    triggers: list[AlertTrigger]

    def columns(self) -> dict[str, Any]:
        """The score's columns of an assessment (a new one, or a correction's next version)."""
        result = self.result
        return {
            "valid": result.valid,
            "total": result.total,
            "raw_total": result.raw_total,
            "prorated": result.prorated,
            "missing_items": result.missing_items,
            "severity": result.severity.value if result.severity else None,
            "risk": result.risk.value if result.risk else None,
            "subscores": dict(result.subscores),
            "flags": list(result.flags),
        }


def score_submission(
    instrument: Instrument,
    *,
    items: list[int | None] | None,
    total: int | None,
    item9: int | None,
    difficulty: int | None,
) -> Scored:
    """Check, score and judge safety: the answers of a form, or a total-only score
    (clinical-rules.md section 6). Items or a total, never both; 422 with a pointer."""
    if items is not None:
        problems = []
        if total is not None:
            problems.append(
                FieldProblem(pointer="/total", detail="send items or a total, not both")
            )
        if item9 is not None:
            problems.append(
                FieldProblem(pointer="/item9", detail="item 9 of a form is its ninth item")
            )
        if problems:
            raise invalid(problems)
        check_items(instrument, items, difficulty)
        result = score(instrument, items)
        return Scored(items, None, result, evaluate_safety(instrument, items, result))
    if total is None:
        raise invalid(
            [FieldProblem(pointer="/items", detail="send the items, or a total (PHQ-9, GAD-7)")]
        )
    found = total_problems(instrument, total, item9)
    if difficulty is not None and instrument is not Instrument.PHQ9:
        found.append(("difficulty", "only the PHQ-9 has a difficulty item"))
    if found:
        raise invalid([FieldProblem(pointer=f"/{name}", detail=detail) for name, detail in found])
    result = score_total(instrument, total, item9)
    return Scored(None, item9, result, evaluate_total_safety(instrument, item9))


def _resolve_course(
    conn: Connection, *, patient_id: str, data: AssessmentCreate, active_course_id: str | None
) -> str | None:
    """The course the assessment belongs to. What the body names must be the patient's own
    (so of its organisation too), and a session must be of the course named with it: else a
    422 pointing at the reference (the patient, named by the path, is checked before)."""
    problems: list[FieldProblem] = []
    course_id = data.course_id
    if data.course_id is not None and (
        care_repository.get_course(conn, patient_id=patient_id, course_id=data.course_id) is None
    ):
        problems.append(FieldProblem(pointer="/course_id", detail="not a course of this patient"))
    if data.session_id is not None:
        care_session = care_repository.get_session(
            conn, patient_id=patient_id, session_id=data.session_id
        )
        if care_session is None:
            problems.append(
                FieldProblem(pointer="/session_id", detail="not a session of this patient")
            )
        elif data.course_id is None:
            course_id = care_session.course_id
        elif care_session.course_id != data.course_id and not problems:
            problems.append(
                FieldProblem(pointer="/session_id", detail="a session of another course")
            )
    if problems:
        raise invalid(problems)
    return course_id if course_id is not None else active_course_id


def submit_assessment(
    conn: Connection, *, principal: Principal, patient_id: str, data: AssessmentCreate
) -> AssessmentPublic:
    scored = score_submission(
        data.instrument,
        items=data.items,
        total=data.total,
        item9=data.item9,
        difficulty=data.difficulty,
    )
    if principal.is_patient and principal.patient_id != patient_id:
        raise not_found("Patient")
    found, active_course_id = repository.patient_and_active_course(
        conn, organisation_id=principal.organisation_id, patient_id=patient_id
    )
    if not found:
        raise not_found("Patient")
    course_id = _resolve_course(
        conn, patient_id=patient_id, data=data, active_course_id=active_course_id
    )

    now = utcnow()
    assessment_id = new_id()
    source = Source.patient if principal.is_patient else data.source
    values = {
        "id": assessment_id,
        "organisation_id": principal.organisation_id,
        "patient_id": patient_id,
        "course_id": course_id,
        "session_id": data.session_id,
        "instrument": data.instrument.value,
        "items": data.items,
        "item9": scored.item9,
        "difficulty": data.difficulty,
        "administered_at": data.administered_at,
        "recorded_at": now,
        "source": source.value,
        **scored.columns(),
        **first_version(AssessmentStatus.final.value, at=now, by=principal.token_id),
    }
    repository.insert_assessment(conn, values)
    emit_about(
        conn,
        values,
        type=EventType.assessment_submitted,
        data={
            "instrument": data.instrument.value,
            "course_id": course_id,
            "version": 1,
            "valid": values["valid"],
            "severity": values["severity"],
            "risk": values["risk"],
            "source": source.value,
        },
        at=now,
    )
    alerts = alerts_service.open_alerts(
        conn,
        organisation_id=principal.organisation_id,
        patient_id=patient_id,
        assessment_id=assessment_id,
        triggers=scored.triggers,
        at=now,
    )
    return AssessmentPublic.from_values(values, alerts)


def get_assessment(
    conn: Connection, *, principal: Principal, assessment_id: str
) -> AssessmentPublic:
    row = repository.get(
        conn, organisation_id=principal.organisation_id, assessment_id=assessment_id
    )
    if row is None or (principal.is_patient and row.patient_id != principal.patient_id):
        raise not_found("Assessment")
    audit.concerns(row.patient_id)
    alerts = alerts_service.summaries_by_assessment(conn, [row.id])
    return AssessmentPublic.from_row(row, alerts.get(row.id, []))


def list_assessments(
    conn: Connection,
    *,
    principal: Principal,
    patient_id: str,
    instrument: Instrument | None,
    since: datetime | None,
    until: datetime | None,
    cursor: str | None,
    limit: int,
) -> Page[AssessmentPublic]:
    if since is not None and until is not None and since > until:
        raise invalid([FieldProblem(parameter="since", detail="must not be after until")])
    require_patient(conn, principal=principal, patient_id=patient_id)
    before = decode_cursor(cursor) if cursor else None
    rows = repository.page(
        conn,
        patient_id=patient_id,
        instrument=instrument.value if instrument else None,
        since=since,
        until=until,
        before=before,
        limit=limit + 1,
    )
    rows, next_cursor = cut(rows, limit, lambda r: (r.administered_at, r.id))
    alerts = alerts_service.summaries_by_assessment(conn, [r.id for r in rows])
    return Page[AssessmentPublic](
        data=[AssessmentPublic.from_row(r, alerts.get(r.id, [])) for r in rows],
        next_cursor=next_cursor,
    )
