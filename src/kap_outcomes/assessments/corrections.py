"""Corrections never overwrite: amending or retracting records a new version of the
assessment and keeps every earlier one, with who changed it, when and why.

Optimistic concurrency: a correction names the version it corrects (``If-Match`` with the
assessment's ``ETag``); without it the request is a 428, against a newer version a 412.
``If-Match: *`` names no version (it holds for whatever version is current, RFC 9110
§13.1.1), so it would let a correction overwrite one its author never read: also a 428.
Amending re-evaluates safety: a trigger the assessment had not raised yet opens its alert;
alerts already opened are never closed by a correction (a clinician closes them).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from kap_outcomes.alerts import service as alerts_service
from kap_outcomes.assessments import repository
from kap_outcomes.assessments.models import (
    AssessmentAmend,
    AssessmentHistory,
    AssessmentPublic,
    AssessmentRetract,
    AssessmentStatus,
    AssessmentVersion,
)
from kap_outcomes.assessments.service import score_submission
from kap_outcomes.audit import service as audit
from kap_outcomes.auth.service import Principal
from kap_outcomes.clinical.instruments import Instrument
from kap_outcomes.db import new_id, utcnow
from kap_outcomes.errors import conflict, not_found
from kap_outcomes.events.models import EventType
from kap_outcomes.events.outbox import emit
from kap_outcomes.preconditions import check_if_match, precondition_failed


def _current(
    conn: Connection, principal: Principal, assessment_id: str, if_match: str | None
) -> Any:
    row = repository.get_for_update(
        conn, organisation_id=principal.organisation_id, assessment_id=assessment_id
    )
    if row is None or (principal.is_patient and row.patient_id != principal.patient_id):
        raise not_found("Assessment")
    audit.concerns(row.patient_id)
    check_if_match(if_match, row.version)
    if row.status == AssessmentStatus.entered_in_error.value:
        raise conflict("This assessment was retracted (entered in error); record a new one.")
    return row


def _supersede(
    conn: Connection, current: Any, values: dict[str, Any], *, principal: Principal
) -> None:
    repository.keep_revision(conn, current=current, revision_id=new_id())
    if not repository.replace_current(
        conn, assessment_id=current.id, expected_version=current.version, values=values
    ):
        raise precondition_failed()
    retracted = values["status"] == AssessmentStatus.entered_in_error.value
    emit(
        conn,
        type=EventType.assessment_retracted if retracted else EventType.assessment_amended,
        organisation_id=principal.organisation_id,
        patient_id=current.patient_id,
        resource_type="assessment",
        resource_id=current.id,
        data={
            "instrument": current.instrument,
            "version": values["version"],
            "valid": values.get("valid", current.valid),
            "severity": values.get("severity", current.severity),
            "risk": values.get("risk", current.risk),
        },
        at=values["version_at"],
    )


def _public(conn: Connection, principal: Principal, assessment_id: str) -> AssessmentPublic:
    row = repository.get(
        conn, organisation_id=principal.organisation_id, assessment_id=assessment_id
    )
    assert row is not None  # written in this transaction
    alerts = alerts_service.summaries_by_assessment(conn, [assessment_id])
    return AssessmentPublic.from_row(row, alerts.get(assessment_id, []))


def amend_assessment(
    conn: Connection,
    *,
    principal: Principal,
    assessment_id: str,
    if_match: str | None,
    data: AssessmentAmend,
) -> AssessmentPublic:
    current = _current(conn, principal, assessment_id, if_match)
    instrument = Instrument(current.instrument)
    difficulty = data.difficulty if "difficulty" in data.model_fields_set else current.difficulty
    scored = score_submission(
        instrument, items=data.items, total=data.total, item9=data.item9, difficulty=difficulty
    )
    result, triggers = scored.result, scored.triggers
    now = utcnow()
    _supersede(
        conn,
        current,
        {
            "items": data.items,
            "item9": scored.item9,
            "difficulty": difficulty,
            "administered_at": data.administered_at or current.administered_at,
            "valid": result.valid,
            "total": result.total,
            "raw_total": result.raw_total,
            "prorated": result.prorated,
            "missing_items": result.missing_items,
            "severity": result.severity.value if result.severity else None,
            "risk": result.risk.value if result.risk else None,
            "subscores": dict(result.subscores),
            "flags": list(result.flags),
            "version": current.version + 1,
            "status": AssessmentStatus.amended.value,
            "version_at": now,
            "recorded_by": principal.token_id,
            "version_reason": data.reason,
        },
        principal=principal,
    )
    raised = {
        (alert.kind, alert.level)
        for alert in alerts_service.summaries_by_assessment(conn, [assessment_id]).get(
            assessment_id, []
        )
    }
    alerts_service.open_alerts(
        conn,
        organisation_id=principal.organisation_id,
        patient_id=current.patient_id,
        assessment_id=assessment_id,
        triggers=[t for t in triggers if (t.kind.value, t.level.value) not in raised],
        at=now,
    )
    return _public(conn, principal, assessment_id)


def retract_assessment(
    conn: Connection,
    *,
    principal: Principal,
    assessment_id: str,
    if_match: str | None,
    data: AssessmentRetract,
) -> AssessmentPublic:
    current = _current(conn, principal, assessment_id, if_match)
    _supersede(
        conn,
        current,
        {
            "version": current.version + 1,
            "status": AssessmentStatus.entered_in_error.value,
            "version_at": utcnow(),
            "recorded_by": principal.token_id,
            "version_reason": data.reason,
        },
        principal=principal,
    )
    return _public(conn, principal, assessment_id)


def _version(row: Any) -> AssessmentVersion:
    return AssessmentVersion(
        version=row.version,
        status=row.status,
        items=row.items,
        item9=row.item9,
        difficulty=row.difficulty,
        administered_at=row.administered_at,
        valid=row.valid,
        total=row.total,
        severity=row.severity,
        risk=row.risk,
        flags=row.flags,
        recorded_at=row.version_at,
        recorded_by=row.recorded_by,
        reason=row.version_reason,
    )


def assessment_history(
    conn: Connection, *, principal: Principal, assessment_id: str
) -> AssessmentHistory:
    row = repository.get(
        conn, organisation_id=principal.organisation_id, assessment_id=assessment_id
    )
    if row is None or (principal.is_patient and row.patient_id != principal.patient_id):
        raise not_found("Assessment")
    audit.concerns(row.patient_id)
    versions = [_version(r) for r in repository.revisions_of(conn, assessment_id=assessment_id)]
    return AssessmentHistory(
        assessment_id=assessment_id,
        current_version=row.version,
        versions=[*versions, _version(row)],
    )


def patient_histories(
    conn: Connection, *, principal: Principal, patient_id: str, assessment_ids: list[str]
) -> dict[str, list[AssessmentVersion]]:
    """Every version of each of the patient's named assessments, as ``assessment_history``
    lists them, read in one statement however many there are. For a page that has already
    read the patient (its role rules and audit) and listed these assessments."""
    if principal.is_patient and patient_id != principal.patient_id:
        raise not_found("Assessment")
    audit.concerns(patient_id)
    histories: dict[str, list[AssessmentVersion]] = {}
    for row in repository.versions_of(
        conn,
        organisation_id=principal.organisation_id,
        patient_id=patient_id,
        assessment_ids=assessment_ids,
    ):
        histories.setdefault(row.assessment_id, []).append(_version(row))
    return histories
