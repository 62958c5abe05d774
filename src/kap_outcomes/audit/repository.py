"""Queries on audit events: insert and read, nothing else (append-only by construction)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from kap_outcomes.audit.models import AuditEvent
from kap_outcomes.db import HotStatement, defer_rows
from kap_outcomes.rows import table_of

events = table_of(AuditEvent)

_INSERT = HotStatement(insert(events), keys=[c.name for c in events.columns])


def append(conn: Connection, values: dict[str, Any]) -> None:
    """``values`` holds every column. Inserted with the transaction's other events just
    before it commits (one executemany for a whole group commit)."""
    defer_rows(conn, _INSERT, values)


def append_unless_stored(conn: Connection, values: dict[str, Any]) -> None:
    """Insert, unless an event with this id was committed already (by the request's own
    write, before the request failed)."""
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(dialect_insert(events).values(**values).on_conflict_do_nothing())


def page(
    conn: Connection,
    *,
    organisation_id: str,
    patient_id: str | None,
    actor: str | None,
    since: datetime | None,
    until: datetime | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[Any]:
    """Newest first, keyset on (at, id)."""
    query = select(events).where(events.c.organisation_id == organisation_id)
    if patient_id is not None:
        query = query.where(events.c.patient_id == patient_id)
    if actor is not None:
        query = query.where(events.c.actor == actor)
    if since is not None:
        query = query.where(events.c.at >= since)
    if until is not None:
        query = query.where(events.c.at <= until)
    if before is not None:
        at, row_id = before
        query = query.where(or_(events.c.at < at, and_(events.c.at == at, events.c.id < row_id)))
    query = query.order_by(events.c.at.desc(), events.c.id.desc()).limit(limit)
    return list(conn.execute(query).all())
