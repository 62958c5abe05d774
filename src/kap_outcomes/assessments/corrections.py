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
    Assessment,
    AssessmentAmend,
    AssessmentHistory,
    AssessmentPublic,
    AssessmentRetract,
    AssessmentRevision,
    AssessmentStatus,
    AssessmentVersion,
)
from kap_outcomes.assessments.service import score_submission
from kap_outcomes.audit import service as audit
from kap_outcomes.auth.service import Principal
from kap_outcomes.clinical.instruments import Instrument
from kap_outcomes.corrections import Corrections, version_of
from kap_outcomes.errors import not_found
from kap_outcomes.rows import shaped, values_of

CORRECTIONS = Corrections(repository.versioned, "assessment")


def _current(
    conn: Connection, principal: Principal, assessment_id: str, if_match: str | None
) -> Assessment:
    row = CORRECTIONS.visible(conn, principal, assessment_id, lock=True)
    CORRECTIONS.check(row, if_match)
    return row


def _supersede(
    conn: Connection, current: Assessment, values: dict[str, Any], *, principal: Principal
) -> None:
    data = {
        "instrument": current.instrument,
        "version": values["version"],
        "valid": values.get("valid", current.valid),
        "severity": values.get("severity", current.severity),
        "risk": values.get("risk", current.risk),
    }
    CORRECTIONS.supersede(conn, current, values, principal=principal, data=data)


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
    values = CORRECTIONS.next_version(
        current, status=AssessmentStatus.amended.value, principal=principal, reason=data.reason
    )
    _supersede(
        conn,
        current,
        {
            "items": data.items,
            "item9": scored.item9,
            "difficulty": difficulty,
            "administered_at": data.administered_at or current.administered_at,
            **scored.columns(),
            **values,
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
        triggers=[t for t in scored.triggers if (t.kind.value, t.level.value) not in raised],
        at=values["version_at"],
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
    retracted = AssessmentStatus.entered_in_error.value
    values = CORRECTIONS.next_version(
        current, status=retracted, principal=principal, reason=data.reason
    )
    _supersede(conn, current, values, principal=principal)
    return _public(conn, principal, assessment_id)


def _version(row: Assessment | AssessmentRevision) -> AssessmentVersion:
    return shaped(AssessmentVersion, {**values_of(row), **version_of(row)})


def assessment_history(
    conn: Connection, *, principal: Principal, assessment_id: str
) -> AssessmentHistory:
    row = CORRECTIONS.visible(conn, principal, assessment_id)
    kept = repository.versioned.history(conn, id=assessment_id)
    return AssessmentHistory(
        assessment_id=assessment_id,
        current_version=row.version,
        versions=[*(_version(r) for r in kept), _version(row)],
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
    versions = repository.versions_of(
        conn,
        organisation_id=principal.organisation_id,
        patient_id=patient_id,
        assessment_ids=assessment_ids,
    )
    return {key: [_version(row) for row in rows] for key, rows in versions.items()}
