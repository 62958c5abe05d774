"""All queries on the event log and its consumers' checkpoints."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, delete, func, insert, literal_column, select, tuple_, update
from sqlalchemy.sql.elements import ColumnElement

from kap_outcomes.db import HotStatement, defer_rows, utcnow
from kap_outcomes.events.models import Event, EventConsumer
from kap_outcomes.rows import every, table_of

events = table_of(Event)
consumers = table_of(EventConsumer)


class Position(NamedTuple):
    """Where an event sits in the log: (transaction, sequence)."""

    tx: int
    seq: int


START = Position(0, 0)


def position_of(row: Event) -> Position:
    """A stored event's position (its sequence is drawn at insert)."""
    assert row.seq is not None
    return Position(int(row.tx), row.seq)


_KEYS = [c.name for c in events.columns if c.name not in ("seq", "tx")]
_PG_TX: ColumnElement[int] = literal_column("pg_current_xact_id()::text::bigint")
_INSERT = {
    "postgresql": HotStatement(insert(events).values(tx=_PG_TX), keys=_KEYS),
    "sqlite": HotStatement(insert(events).values(tx=0), keys=_KEYS),
}


def append(conn: Connection, values: dict[str, Any]) -> None:
    """Inserted with the transaction's other deferred rows just before it commits."""
    defer_rows(conn, _INSERT[conn.dialect.name], values)


def _settled(conn: Connection) -> list[ColumnElement[bool]]:
    """On PostgreSQL only rows of transactions older than every running one: those can no
    longer be joined by a row with a smaller position (sequences are drawn at insert, not at
    commit). SQLite has one writer at a time, so commit order is sequence order."""
    if conn.dialect.name != "postgresql":
        return []
    return [events.c.tx < literal_column("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")]


def _after(position: Position) -> ColumnElement[bool]:
    return tuple_(events.c.tx, events.c.seq) > tuple_(position.tx, position.seq)


def page(
    conn: Connection,
    *,
    organisation_id: str,
    after: Position,
    types: Collection[str] | None,
    patient_id: str | None,
    limit: int,
) -> list[Event]:
    """The organisation's events after ``after``, in log order (oldest first)."""
    query = select(events).where(
        events.c.organisation_id == organisation_id, _after(after), *_settled(conn)
    )
    if types is not None:
        query = query.where(events.c.type.in_(list(types)))
    if patient_id is not None:
        query = query.where(events.c.patient_id == patient_id)
    query = query.order_by(events.c.organisation_id, events.c.tx, events.c.seq).limit(limit)
    return every(conn, Event, query)


def head(conn: Connection, *, organisation_id: str) -> Position | None:
    """The position of the organisation's newest settled event."""
    row = conn.execute(
        select(events.c.tx, events.c.seq)
        .where(events.c.organisation_id == organisation_id, *_settled(conn))
        .order_by(events.c.organisation_id.desc(), events.c.tx.desc(), events.c.seq.desc())
        .limit(1)
    ).first()
    return Position(int(row.tx), int(row.seq)) if row is not None else None


class Logged(NamedTuple):
    """An event as a consumer routes it: where it sits, what and whose it is (no ``data``)."""

    tx: int
    seq: int
    id: str
    organisation_id: str
    type: str
    patient_id: str | None
    occurred_at: datetime


def following(conn: Connection, *, after: Position, limit: int) -> list[Logged]:
    """Every organisation's events after ``after``, in log order (a consumer's next batch)."""
    query = (
        select(*(events.c[name] for name in Logged._fields))
        .where(_after(after), *_settled(conn))
        .order_by(events.c.tx, events.c.seq)
        .limit(limit)
    )
    return [Logged._make(row) for row in conn.execute(query)]


def checkpoint(conn: Connection, *, name: str) -> Position | None:
    row = conn.execute(
        select(consumers.c.tx, consumers.c.seq).where(consumers.c.name == name)
    ).first()
    return Position(int(row.tx), int(row.seq)) if row is not None else None


def claim_consumer(conn: Connection, *, name: str) -> Position | None:
    """Lock a consumer's checkpoint for this transaction; None while another worker holds it
    (SKIP LOCKED on PostgreSQL; SQLite's writer lock already serialises the callers)."""
    row = conn.execute(
        select(consumers.c.tx, consumers.c.seq)
        .where(consumers.c.name == name)
        .with_for_update(skip_locked=True)
    ).first()
    return Position(int(row.tx), int(row.seq)) if row is not None else None


def advance_consumer(conn: Connection, *, name: str, to: Position) -> None:
    conn.execute(
        update(consumers)
        .where(consumers.c.name == name)
        .values(tx=to.tx, seq=to.seq, updated_at=utcnow())
    )


def behind(conn: Connection, *, name: str) -> bool:
    """Has the consumer events left to read? (A read: an idle worker writes nothing.)"""
    after = checkpoint(conn, name=name)
    return after is not None and bool(following(conn, after=after, limit=1))


def backlog(conn: Connection, *, name: str, cap: int) -> int:
    """How many settled events the consumer has yet to read (counted up to ``cap``)."""
    after = checkpoint(conn, name=name)
    if after is None:  # no such consumer: nobody is behind
        return 0
    waiting = select(events.c.seq).where(_after(after), *_settled(conn)).limit(cap).subquery()
    return int(conn.execute(select(func.count()).select_from(waiting)).scalar_one())


def oldest_checkpoint(conn: Connection) -> Position:
    """The position every consumer of the log has read up to (``START`` when there is none)."""
    rows = conn.execute(select(consumers.c.tx, consumers.c.seq)).all()
    return min((Position(int(r.tx), int(r.seq)) for r in rows), default=START)


def delete_events(conn: Connection, *, ids: Collection[str]) -> None:
    if ids:
        conn.execute(delete(events).where(events.c.id.in_(list(ids))))
