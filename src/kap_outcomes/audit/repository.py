"""Queries on audit events: insert and read, nothing else (append-only by construction)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from kap_outcomes.audit.models import AuditEvent
from kap_outcomes.db import HotStatement, defer_rows
from kap_outcomes.rows import before_key, every, table_of

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
) -> list[AuditEvent]:
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
    query = before_key(query, events.c.at, events.c.id, before)
    return every(conn, AuditEvent, query.limit(limit))
