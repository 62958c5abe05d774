"""All queries on alerts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from kap_outcomes.alerts.models import Alert, AlertSummary
from kap_outcomes.db import HotStatement
from kap_outcomes.rows import before_key, columns_for, every, owned, shaped, table_of

alerts = table_of(Alert)


_INSERT = HotStatement(insert(alerts), keys=[c.name for c in alerts.columns])


_LIFECYCLE_UNSET = {
    "acknowledged_at": None,
    "acknowledged_by": None,
    "acknowledged_note": None,
    "resolved_at": None,
    "resolved_by": None,
    "resolved_note": None,
}


def insert_alerts(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """New (open) alerts: each row holds every column but the lifecycle ones."""
    for row in rows:
        _INSERT.run(conn, {**_LIFECYCLE_UNSET, **row})


def for_assessments(
    conn: Connection, assessment_ids: Sequence[str]
) -> list[tuple[str, AlertSummary]]:
    """(assessment id, alert) of the assessments' alerts, oldest first."""
    if not assessment_ids:
        return []
    rows = conn.execute(
        select(alerts.c.assessment_id, *columns_for(alerts, AlertSummary))
        .where(alerts.c.assessment_id.in_(list(assessment_ids)))
        .order_by(alerts.c.created_at, alerts.c.id)
    )
    return [(row.assessment_id, shaped(AlertSummary, row)) for row in rows]


def page(
    conn: Connection,
    *,
    organisation_id: str,
    status: str | None,
    patient_id: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Alert]:
    query = select(alerts).where(alerts.c.organisation_id == organisation_id)
    if status is not None:
        query = query.where(alerts.c.status == status)
    if patient_id is not None:
        query = query.where(alerts.c.patient_id == patient_id)
    query = before_key(query, alerts.c.created_at, alerts.c.id, after)
    return every(conn, Alert, query.limit(limit))


def get(conn: Connection, *, organisation_id: str, alert_id: str) -> Alert | None:
    return owned(conn, Alert, id=alert_id, organisation_id=organisation_id)


def transition(
    conn: Connection, *, alert_id: str, from_status: str, values: dict[str, Any]
) -> bool:
    """Move one alert on from `from_status`; False when another request moved it first."""
    result = conn.execute(
        update(alerts)
        .where(alerts.c.id == alert_id, alerts.c.status == from_status)
        .values(**values)
    )
    return result.rowcount == 1
