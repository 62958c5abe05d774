"""Use cases on alerts: opening them with their assessment, listing them, and their lifecycle.

Lifecycle (clinical-rules.md section 2): ``open`` → ``acknowledged`` → ``resolved``, each step
recording who (the token id), when and an optional note. Nothing deletes an alert. Resolving
an ``open`` alert acknowledges and resolves it at once (both stamps, same time and token, the
note kept as the resolution note): a clinician who has dealt with the risk should not have to
make two calls. Acknowledging twice, acknowledging a resolved alert or resolving a resolved
one is a 409: the record of who did what first is never overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from kap_outcomes.alerts import repository
from kap_outcomes.alerts.models import Alert, AlertAction, AlertPublic, AlertStatus, AlertSummary
from kap_outcomes.audit import service as audit
from kap_outcomes.auth.service import Principal
from kap_outcomes.clinical.safety import AlertTrigger
from kap_outcomes.db import new_id, utcnow
from kap_outcomes.errors import conflict, not_found
from kap_outcomes.events.models import EventType
from kap_outcomes.events.outbox import emit_about
from kap_outcomes.pagination import Page, cut, decode_cursor
from kap_outcomes.rows import shaped, values_of


def open_alerts(
    conn: Connection,
    *,
    organisation_id: str,
    patient_id: str,
    assessment_id: str,
    triggers: Sequence[AlertTrigger],
    at: datetime,
) -> list[AlertSummary]:
    """Open one alert per trigger, in the caller's transaction (clinical-rules.md section 2)."""
    rows = [
        {
            "id": new_id(),
            "organisation_id": organisation_id,
            "patient_id": patient_id,
            "assessment_id": assessment_id,
            "level": t.level.value,
            "kind": t.kind.value,
            "status": AlertStatus.open.value,
            "reason": t.reason,
            "suggested_action": t.suggested_action,
            "created_at": at,
        }
        for t in triggers
    ]
    repository.insert_alerts(conn, rows)
    for row in rows:
        _emit(conn, EventType.alert_opened, row)
    return [
        AlertSummary(id=r["id"], level=r["level"], kind=r["kind"], status=AlertStatus.open)
        for r in rows
    ]


def summaries_by_assessment(
    conn: Connection, assessment_ids: Sequence[str]
) -> dict[str, list[AlertSummary]]:
    out: dict[str, list[AlertSummary]] = {}
    for assessment_id, summary in repository.for_assessments(conn, assessment_ids):
        out.setdefault(assessment_id, []).append(summary)
    return out


def _public(row: Alert | Mapping[str, Any]) -> AlertPublic:
    return shaped(AlertPublic, row)


def list_alerts(
    conn: Connection,
    *,
    principal: Principal,
    status: AlertStatus | None,
    patient_id: str | None,
    cursor: str | None,
    limit: int,
) -> Page[AlertPublic]:
    audit.concerns(patient_id)
    after = decode_cursor(cursor) if cursor else None
    rows = repository.page(
        conn,
        organisation_id=principal.organisation_id,
        status=status.value if status else None,
        patient_id=patient_id,
        after=after,
        limit=limit + 1,
    )
    rows, next_cursor = cut(rows, limit, lambda r: (r.created_at, r.id))
    return Page[AlertPublic](data=[_public(r) for r in rows], next_cursor=next_cursor)


def acknowledge(
    conn: Connection, *, principal: Principal, alert_id: str, data: AlertAction
) -> AlertPublic:
    """open → acknowledged; 409 once it has been acknowledged or resolved."""
    row = _require(conn, principal=principal, alert_id=alert_id)
    if row.status != AlertStatus.open:
        raise conflict(f"The alert is already {row.status}.")
    values = {
        "status": AlertStatus.acknowledged.value,
        "acknowledged_at": utcnow(),
        "acknowledged_by": principal.token_id,
        "acknowledged_note": data.note,
    }
    return _move(conn, row=row, values=values)


def resolve(
    conn: Connection, *, principal: Principal, alert_id: str, data: AlertAction
) -> AlertPublic:
    """acknowledged → resolved, or open → acknowledged and resolved at once; 409 if resolved."""
    row = _require(conn, principal=principal, alert_id=alert_id)
    if row.status == AlertStatus.resolved:
        raise conflict("The alert is already resolved.")
    now = utcnow()
    values: dict[str, Any] = {
        "status": AlertStatus.resolved.value,
        "resolved_at": now,
        "resolved_by": principal.token_id,
        "resolved_note": data.note,
    }
    if row.status == AlertStatus.open:
        values |= {"acknowledged_at": now, "acknowledged_by": principal.token_id}
    return _move(conn, row=row, values=values)


def _require(conn: Connection, *, principal: Principal, alert_id: str) -> Alert:
    row = repository.get(conn, organisation_id=principal.organisation_id, alert_id=alert_id)
    if row is None:
        raise not_found("Alert")
    audit.concerns(row.patient_id)
    return row


def _move(conn: Connection, *, row: Alert, values: dict[str, Any]) -> AlertPublic:
    if not repository.transition(conn, alert_id=row.id, from_status=row.status, values=values):
        raise conflict("The alert was changed by another request; read it again.")
    moved = {**values_of(row), **values}
    kind = (
        EventType.alert_resolved
        if values["status"] == AlertStatus.resolved.value
        else EventType.alert_acknowledged
    )
    _emit(conn, kind, moved)
    return _public(moved)


def _emit(conn: Connection, kind: EventType, alert: Mapping[str, Any]) -> None:
    emit_about(
        conn,
        alert,
        type=kind,
        data={
            "assessment_id": alert["assessment_id"],
            "level": alert["level"],
            "kind": alert["kind"],
            "status": alert["status"],
        },
    )
