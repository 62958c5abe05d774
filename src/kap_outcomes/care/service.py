"""Use cases on courses and sessions.

A patient has at most one active course; creating a course closes the previous one. A session
without ``course_id`` belongs to the active course; a dose with no active course opens one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from kap_outcomes.auth.service import Principal
from kap_outcomes.care import repository
from kap_outcomes.care.models import (
    DOSE_KINDS,
    CareSession,
    Course,
    CourseCreate,
    CoursePublic,
    Dose,
    DoseRoute,
    SessionCreate,
    SessionKind,
    SessionPublic,
    SessionStatus,
)
from kap_outcomes.db import new_id, utcnow
from kap_outcomes.errors import DomainError, FieldProblem, invalid
from kap_outcomes.events.models import EventType
from kap_outcomes.events.outbox import emit_about
from kap_outcomes.pagination import Page, cut, decode_cursor
from kap_outcomes.patients import repository as patients_repository
from kap_outcomes.patients.service import require_patient
from kap_outcomes.policy import service as policy_service
from kap_outcomes.rows import as_model, found, shaped, values_of
from kap_outcomes.versions import first_version


def _course_public(row: Course) -> CoursePublic:
    return shaped(CoursePublic, {**values_of(row), "active": row.ended_at is None})


def session_public(row: CareSession) -> SessionPublic:
    dose = (  # as stored: a dose recorded under older, wider bounds still reads
        Dose.model_construct(route=DoseRoute(row.dose_route), amount_mg=row.dose_amount_mg)
        if row.dose_route is not None and row.dose_amount_mg is not None
        else None
    )
    return shaped(SessionPublic, {**values_of(row), "dose": dose})


def open_course(
    conn: Connection, *, principal: Principal, patient_id: str, data: CourseCreate
) -> CoursePublic:
    require_patient(conn, principal=principal, patient_id=patient_id)
    # Without the lock, courses created at once each close only the courses committed
    # before them, and several stay active.
    patients_repository.lock(conn, patient_id=patient_id)
    return _open_course(
        conn,
        organisation_id=principal.organisation_id,
        patient_id=patient_id,
        data=data,
    )


def _open_course(
    conn: Connection, *, organisation_id: str, patient_id: str, data: CourseCreate
) -> CoursePublic:
    now = utcnow()
    induction_doses = data.induction_doses
    if "induction_doses" not in data.model_fields_set:
        # A course that does not set its own takes the organisation's policy in force.
        _, policy = policy_service.current_policy(conn, organisation_id=organisation_id)
        induction_doses = policy.induction_doses
    repository.close_active_courses(conn, patient_id=patient_id, at=now)
    values: dict[str, Any] = {
        "id": new_id(),
        "organisation_id": organisation_id,
        "patient_id": patient_id,
        "label": data.label,
        "induction_doses": induction_doses,
        "started_at": data.started_at or now,
        "ended_at": None,
        "created_at": now,
    }
    repository.insert_course(conn, values)
    emit_about(
        conn,
        values,
        type=EventType.course_opened,
        data={"induction_doses": induction_doses},
        at=now,
    )
    return _course_public(as_model(Course, values))


def list_courses(conn: Connection, *, principal: Principal, patient_id: str) -> list[CoursePublic]:
    require_patient(conn, principal=principal, patient_id=patient_id)
    return [_course_public(r) for r in repository.list_courses(conn, patient_id=patient_id)]


def get_course(
    conn: Connection, *, principal: Principal, patient_id: str, course_id: str
) -> CoursePublic:
    require_patient(conn, principal=principal, patient_id=patient_id)
    row = repository.get_course(conn, patient_id=patient_id, course_id=course_id)
    return _course_public(found(row, "Course"))


def get_session(
    conn: Connection, *, principal: Principal, patient_id: str, session_id: str
) -> SessionPublic:
    require_patient(conn, principal=principal, patient_id=patient_id)
    row = repository.get_session(conn, patient_id=patient_id, session_id=session_id)
    return session_public(found(row, "Session"))


DUPLICATE_WINDOW = timedelta(minutes=60)
"""Two doses of one patient closer than this are one dose entered twice unless the request
says they are distinct (clinical-rules.md section 8, ENG)."""


def check_dose(kind: SessionKind, dose: Dose | None) -> None:
    """A dosing or booster session has a dose; no other kind has one."""
    is_dose = kind in DOSE_KINDS
    if is_dose and dose is None:
        raise invalid([FieldProblem(pointer="/dose", detail=f"required for a {kind} session")])
    if not is_dose and dose is not None:
        raise invalid(
            [FieldProblem(pointer="/dose", detail="only dosing and booster sessions take a dose")]
        )


def refuse_duplicate_dose(
    conn: Connection, *, patient_id: str, occurred_at: datetime, exclude: str | None = None
) -> None:
    """409 ``duplicate-session`` naming the standing dose less than 60 minutes away, if any.

    The caller holds the patient's lock, so two racing requests cannot both pass."""
    nearby = [
        row
        for row in repository.doses_near(
            conn,
            patient_id=patient_id,
            start=occurred_at - DUPLICATE_WINDOW,
            end=occurred_at + DUPLICATE_WINDOW,
            kinds=sorted(k.value for k in DOSE_KINDS),
        )
        if row.id != exclude
    ]
    if nearby:
        first = nearby[0]
        raise DomainError(
            detail=(
                f"Session {first.id} already records a {first.kind} dose less than 60 minutes "
                "from this one. Correct that session, or send distinct: true if this is "
                "really a second dose."
            ),
            status=409,
            slug="duplicate-session",
            extensions={"duplicate_of": first.id},
        )


def record_session(
    conn: Connection, *, principal: Principal, patient_id: str, data: SessionCreate
) -> SessionPublic:
    is_dose = data.kind in DOSE_KINDS
    check_dose(data.kind, data.dose)
    require_patient(conn, principal=principal, patient_id=patient_id)
    if is_dose:
        # Racing duplicates would each find no other dose and both be stored.
        patients_repository.lock(conn, patient_id=patient_id)
        if not data.distinct:
            refuse_duplicate_dose(conn, patient_id=patient_id, occurred_at=data.occurred_at)
    if data.course_id is not None:
        if repository.get_course(conn, patient_id=patient_id, course_id=data.course_id) is None:
            raise invalid(
                [FieldProblem(pointer="/course_id", detail="not a course of this patient")]
            )
        course_id: str | None = data.course_id
    else:
        # Racing first doses would each find no active course and each open one.
        patients_repository.lock(conn, patient_id=patient_id)
        active = repository.active_course(conn, patient_id=patient_id)
        if active is not None:
            course_id = active.id
        elif is_dose:
            course_id = _open_course(
                conn,
                organisation_id=principal.organisation_id,
                patient_id=patient_id,
                data=CourseCreate(started_at=data.occurred_at),
            ).id
        else:
            course_id = None
    now = utcnow()
    values: dict[str, Any] = {
        "id": new_id(),
        "organisation_id": principal.organisation_id,
        "patient_id": patient_id,
        "course_id": course_id,
        "kind": data.kind.value,
        "occurred_at": data.occurred_at,
        "dose_route": data.dose.route.value if data.dose else None,
        "dose_amount_mg": data.dose.amount_mg if data.dose else None,
        "created_at": now,
        **first_version(SessionStatus.final.value, at=now, by=principal.token_id),
    }
    repository.insert_session(conn, values)
    emit_about(
        conn,
        values,
        type=EventType.session_recorded,
        data={"kind": data.kind.value, "course_id": course_id},
        at=now,
    )
    return session_public(as_model(CareSession, values))


def list_sessions(
    conn: Connection, *, principal: Principal, patient_id: str, cursor: str | None, limit: int
) -> Page[SessionPublic]:
    require_patient(conn, principal=principal, patient_id=patient_id)
    after = decode_cursor(cursor) if cursor else None
    rows = repository.page_sessions(conn, patient_id=patient_id, after=after, limit=limit + 1)
    rows, next_cursor = cut(rows, limit, lambda r: (r.occurred_at, r.id))
    return Page[SessionPublic](data=[session_public(r) for r in rows], next_cursor=next_cursor)
