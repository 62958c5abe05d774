"""Corrections of sessions, as of assessments: amending or retracting records a new version
and keeps every earlier one, with who changed it, when and why (clinical-rules.md section 8).

A correction names the version it corrects (``If-Match`` with the session's ``ETag``). Every
signal reads the current version and leaves retracted sessions out (signals/repository.py),
so the event each correction records (``session.amended``, ``session.retracted``; the caseload
listens to it) is all a correction must do for the booster status, the baseline and the
caseload to follow it.
"""

from __future__ import annotations

from sqlalchemy import Connection

from kap_outcomes.auth.service import Principal
from kap_outcomes.care import repository
from kap_outcomes.care.models import (
    DOSE_KINDS,
    CareSession,
    CareSessionRevision,
    Dose,
    SessionAmend,
    SessionHistory,
    SessionPublic,
    SessionRetract,
    SessionStatus,
    SessionVersion,
)
from kap_outcomes.care.service import check_dose, refuse_duplicate_dose, session_public
from kap_outcomes.corrections import Corrections, version_of
from kap_outcomes.patients import repository as patients_repository
from kap_outcomes.rows import shaped, values_of

CORRECTIONS = Corrections(repository.versioned_sessions, "session")


def get_session(conn: Connection, *, principal: Principal, session_id: str) -> SessionPublic:
    return session_public(CORRECTIONS.visible(conn, principal, session_id))


def _current(
    conn: Connection, principal: Principal, session_id: str, if_match: str | None
) -> CareSession:
    patient_id = CORRECTIONS.visible(conn, principal, session_id).patient_id
    # The patient's lock first (as recording does), then the session's row: a correction and
    # a new dose of the same patient cannot both pass the duplicate check.
    patients_repository.lock(conn, patient_id=patient_id)
    row = CORRECTIONS.visible(conn, principal, session_id, lock=True)  # sessions are never deleted
    CORRECTIONS.check(row, if_match)
    return row


def _supersede(
    conn: Connection, current: CareSession, values: dict[str, object], *, principal: Principal
) -> None:
    data = {
        "kind": values.get("kind", current.kind),
        "course_id": current.course_id,
        "version": values["version"],
    }
    CORRECTIONS.supersede(conn, current, dict(values), principal=principal, data=data)


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
    dose: Dose | None
    if "dose" in given:
        dose = data.dose
    elif current.dose_route is not None:  # kept: a dose never disappears unless sent as null
        dose = _dose(current)
    else:
        dose = None
    check_dose(kind, dose)
    if kind in DOSE_KINDS and not data.distinct:
        refuse_duplicate_dose(
            conn, patient_id=current.patient_id, occurred_at=occurred_at, exclude=current.id
        )
    values = CORRECTIONS.next_version(
        current, status=SessionStatus.amended.value, principal=principal, reason=data.reason
    )
    _supersede(
        conn,
        current,
        {
            "kind": kind,
            "occurred_at": occurred_at,
            "dose_route": dose.route.value if dose else None,
            "dose_amount_mg": dose.amount_mg if dose else None,
            **values,
        },
        principal=principal,
    )
    return get_session(conn, principal=principal, session_id=session_id)


def retract_session(
    conn: Connection,
    *,
    principal: Principal,
    session_id: str,
    if_match: str | None,
    data: SessionRetract,
) -> SessionPublic:
    current = _current(conn, principal, session_id, if_match)
    values = CORRECTIONS.next_version(
        current,
        status=SessionStatus.entered_in_error.value,
        principal=principal,
        reason=data.reason,
    )
    _supersede(conn, current, values, principal=principal)
    return get_session(conn, principal=principal, session_id=session_id)


def _dose(row: CareSession | CareSessionRevision) -> Dose | None:
    if row.dose_route is None or row.dose_amount_mg is None:
        return None
    return Dose(route=row.dose_route, amount_mg=row.dose_amount_mg)


def _version(row: CareSession | CareSessionRevision) -> SessionVersion:
    return shaped(SessionVersion, {**values_of(row), **version_of(row), "dose": _dose(row)})


def session_history(conn: Connection, *, principal: Principal, session_id: str) -> SessionHistory:
    row = CORRECTIONS.visible(conn, principal, session_id)
    kept = repository.versioned_sessions.history(conn, id=session_id)
    return SessionHistory(
        session_id=session_id,
        patient_id=row.patient_id,
        current_version=row.version,
        versions=[*(_version(r) for r in kept), _version(row)],
    )
