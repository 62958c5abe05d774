"""Corrections of sessions, as of assessments: amending or retracting records a new version
and keeps every earlier one, with who changed it, when and why (clinical-rules.md section 8).

A correction names the version it corrects (``If-Match`` with the session's ``ETag``). Every
signal reads the current version and leaves retracted sessions out (signals/repository.py),
so the event each correction records (``session.amended``, ``session.retracted``; the caseload
listens to it) is all a correction must do for the booster status, the baseline and the
caseload to follow it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from kap_outcomes.audit import service as audit
from kap_outcomes.auth.service import Principal
from kap_outcomes.care import repository
from kap_outcomes.care.models import (
    DOSE_KINDS,
    Dose,
    SessionAmend,
    SessionHistory,
    SessionPublic,
    SessionRetract,
    SessionStatus,
    SessionVersion,
)
from kap_outcomes.care.service import check_dose, refuse_duplicate_dose, session_public
from kap_outcomes.db import new_id, utcnow
from kap_outcomes.errors import conflict, not_found
from kap_outcomes.events.models import EventType
from kap_outcomes.events.outbox import emit
from kap_outcomes.patients import repository as patients_repository
from kap_outcomes.preconditions import check_if_match, precondition_failed

NOUN = "session"


def _visible(conn: Connection, principal: Principal, session_id: str) -> Any:
    row = repository.session_by_id(
        conn, organisation_id=principal.organisation_id, session_id=session_id
    )
    if row is None:
        raise not_found("Session")
    audit.concerns(row.patient_id)  # the request's audit event names the patient, even on 4xx
    return row


def get_session(conn: Connection, *, principal: Principal, session_id: str) -> SessionPublic:
    return session_public(_visible(conn, principal, session_id))


def _current(conn: Connection, principal: Principal, session_id: str, if_match: str | None) -> Any:
    patient_id = _visible(conn, principal, session_id).patient_id
    # The patient's lock first (as recording does), then the session's row: a correction and
    # a new dose of the same patient cannot both pass the duplicate check.
    patients_repository.lock(conn, patient_id=patient_id)
    row = repository.session_for_update(
        conn, organisation_id=principal.organisation_id, session_id=session_id
    )
    assert row is not None  # sessions are never deleted
    check_if_match(if_match, row.version, NOUN)
    if row.status == SessionStatus.entered_in_error.value:
        raise conflict("This session was retracted (entered in error); record a new one.")
    return row


def _supersede(
    conn: Connection, current: Any, values: dict[str, Any], *, principal: Principal
) -> None:
    repository.keep_session_revision(conn, current=current, revision_id=new_id())
    if not repository.replace_session(
        conn, session_id=current.id, expected_version=current.version, values=values
    ):
        raise precondition_failed(NOUN)
    retracted = values["status"] == SessionStatus.entered_in_error.value
    emit(
        conn,
        type=EventType.session_retracted if retracted else EventType.session_amended,
        organisation_id=principal.organisation_id,
        patient_id=current.patient_id,
        resource_type="session",
        resource_id=current.id,
        data={
            "kind": values.get("kind", current.kind),
            "course_id": current.course_id,
            "version": values["version"],
        },
        at=values["version_at"],
    )


def _reread(conn: Connection, principal: Principal, session_id: str) -> SessionPublic:
    return session_public(_visible(conn, principal, session_id))


def amend_session(
    conn: Connection,
    *,
    principal: Principal,
    session_id: str,
    if_match: str | None,
    data: SessionAmend,
) -> SessionPublic:
    current = _current(conn, principal, session_id, if_match)
    given = data.model_fields_set
    kind = data.kind if data.kind is not None else current.kind
    occurred_at = data.occurred_at if data.occurred_at is not None else current.occurred_at
    if "dose" in given:
        dose = data.dose
    elif current.dose_route is not None:  # kept: a dose never disappears unless sent as null
        dose = Dose(route=current.dose_route, amount_mg=current.dose_amount_mg)
    else:
        dose = None
    check_dose(kind, dose)
    if kind in DOSE_KINDS and not data.distinct:
        refuse_duplicate_dose(
            conn, patient_id=current.patient_id, occurred_at=occurred_at, exclude=current.id
        )
    _supersede(
        conn,
        current,
        {
            "kind": kind,
            "occurred_at": occurred_at,
            "dose_route": dose.route.value if dose else None,
            "dose_amount_mg": dose.amount_mg if dose else None,
            "version": current.version + 1,
            "status": SessionStatus.amended.value,
            "version_at": utcnow(),
            "recorded_by": principal.token_id,
            "version_reason": data.reason,
        },
        principal=principal,
    )
    return _reread(conn, principal, session_id)


def retract_session(
    conn: Connection,
    *,
    principal: Principal,
    session_id: str,
    if_match: str | None,
    data: SessionRetract,
) -> SessionPublic:
    current = _current(conn, principal, session_id, if_match)
    _supersede(
        conn,
        current,
        {
            "version": current.version + 1,
            "status": SessionStatus.entered_in_error.value,
            "version_at": utcnow(),
            "recorded_by": principal.token_id,
            "version_reason": data.reason,
        },
        principal=principal,
    )
    return _reread(conn, principal, session_id)


def _version(row: Any) -> SessionVersion:
    dose = (
        Dose(route=row.dose_route, amount_mg=row.dose_amount_mg)
        if row.dose_route is not None
        else None
    )
    return SessionVersion(
        version=row.version,
        status=row.status,
        kind=row.kind,
        occurred_at=row.occurred_at,
        dose=dose,
        recorded_at=row.version_at,
        recorded_by=row.recorded_by,
        reason=row.version_reason,
    )


def session_history(conn: Connection, *, principal: Principal, session_id: str) -> SessionHistory:
    row = _visible(conn, principal, session_id)
    versions = [_version(r) for r in repository.session_revisions(conn, session_id=session_id)]
    return SessionHistory(
        session_id=session_id,
        patient_id=row.patient_id,
        current_version=row.version,
        versions=[*versions, _version(row)],
    )
