"""All queries on alerts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update

from kap_outcomes.alerts.models import Alert
from kap_outcomes.db import HotStatement
from kap_outcomes.rows import table_of

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


def for_assessments(conn: Connection, assessment_ids: Sequence[str]) -> list[Any]:
    if not assessment_ids:
        return []
    return list(
        conn.execute(
            select(
                alerts.c.id, alerts.c.assessment_id, alerts.c.level, alerts.c.kind, alerts.c.status
            )
            .where(alerts.c.assessment_id.in_(list(assessment_ids)))
            .order_by(alerts.c.created_at, alerts.c.id)
        ).all()
    )


def page(
    conn: Connection,
    *,
    organisation_id: str,
    status: str | None,
    patient_id: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Any]:
    query = select(alerts).where(alerts.c.organisation_id == organisation_id)
    if status is not None:
        query = query.where(alerts.c.status == status)
    if patient_id is not None:
        query = query.where(alerts.c.patient_id == patient_id)
    if after is not None:
        at, row_id = after
        query = query.where(
            or_(alerts.c.created_at < at, and_(alerts.c.created_at == at, alerts.c.id < row_id))
        )
    query = query.order_by(alerts.c.created_at.desc(), alerts.c.id.desc()).limit(limit)
    return list(conn.execute(query).all())


def get(conn: Connection, *, organisation_id: str, alert_id: str) -> Any | None:
    return conn.execute(
        select(alerts).where(alerts.c.id == alert_id, alerts.c.organisation_id == organisation_id)
    ).first()


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
