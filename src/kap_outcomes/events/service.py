"""The live feed: the organisation's events after a cursor, as a page, a long-poll or a stream.

What a token sees: staff (admin, clinician, integration) every event of their organisation;
a patient token only the ``assessment.*`` events of its own patient (its app refreshes its
own history live), never alerts, signals or another patient's events.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson
from sqlalchemy import Connection

from kap_outcomes.auth.service import Principal
from kap_outcomes.db import Database
from kap_outcomes.errors import FieldProblem, invalid, not_found
from kap_outcomes.events import repository
from kap_outcomes.events.models import (
    PATIENT_VISIBLE,
    Event,
    EventPage,
    EventPublic,
    EventType,
    ResourceRef,
)
from kap_outcomes.events.outbox import BELL
from kap_outcomes.events.repository import START, Position
from kap_outcomes.rows import shaped, values_of

POLL_INTERVAL_S = 1.0
"""Waiters look again this often even without a ring: events that another process wrote."""
HEARTBEAT_S = 15.0
"""A comment line on an idle stream, so proxies do not close it."""


def encode_cursor(position: Position) -> str:
    raw = orjson.dumps([position.tx, position.seq])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, parameter: str = "after") -> Position:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value: Any = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        tx, seq = value
        if not all(type(n) is int and 0 <= n < 2**63 for n in (tx, seq)):
            raise ValueError("bad cursor")
        return Position(tx, seq)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise invalid(
            [FieldProblem(detail="not a cursor this service issued", parameter=parameter)],
            detail="The cursor is not valid.",
        ) from exc


def parse_types(types: str | None) -> frozenset[EventType] | None:
    if types is None or not types.strip():
        return None
    names = [name.strip() for name in types.split(",") if name.strip()]
    known = {t.value: t for t in EventType}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise invalid(
            [
                FieldProblem(
                    parameter="types",
                    detail=f"unknown event type {unknown[0]!r}; known: {', '.join(known)}",
                )
            ]
        )
    return frozenset(known[name] for name in names)


@dataclass(frozen=True, slots=True)
class FeedQuery:
    after: Position
    types: frozenset[EventType] | None
    patient_id: str | None
    limit: int


def visible(principal: Principal, query: FeedQuery) -> FeedQuery | None:
    """The query narrowed to what the caller may see; None when that is nothing."""
    if not principal.is_patient:
        return query
    if query.patient_id is not None and query.patient_id != principal.patient_id:
        raise not_found("Patient")
    types = PATIENT_VISIBLE if query.types is None else query.types & PATIENT_VISIBLE
    if not types:
        return None
    return FeedQuery(query.after, types, principal.patient_id, query.limit)


def public(row: Event) -> EventPublic:
    resource = ResourceRef(type=row.resource_type, id=row.resource_id)
    return shaped(EventPublic, {**values_of(row), "resource": resource})


def read(
    conn: Connection, *, principal: Principal, query: FeedQuery
) -> tuple[list[tuple[Position, EventPublic]], Position]:
    """The next events and the position to continue from."""
    narrowed = visible(principal, query)
    # the head first: every event at or before it is settled, so moving the cursor past
    # events that did not match the filters never skips one that commits later
    head = repository.head(conn, organisation_id=principal.organisation_id) or START
    if narrowed is None:
        return [], max(query.after, head)
    rows = repository.page(
        conn,
        organisation_id=principal.organisation_id,
        after=narrowed.after,
        types=[t.value for t in narrowed.types] if narrowed.types is not None else None,
        patient_id=narrowed.patient_id,
        limit=narrowed.limit,
    )
    events = [(repository.position_of(r), public(r)) for r in rows]
    if len(events) == narrowed.limit:
        return events, events[-1][0]
    last = events[-1][0] if events else query.after
    return events, max(last, head, query.after)


def head_cursor(conn: Connection, *, principal: Principal) -> str:
    """The cursor of the organisation's latest settled event: a page's live updates start
    there (everything before it is already on the page)."""
    return encode_cursor(repository.head(conn, organisation_id=principal.organisation_id) or START)


async def long_poll(
    db: Database, *, principal: Principal, query: FeedQuery, wait_s: float
) -> EventPage:
    """A page, waiting up to ``wait_s`` for the first event when there is none yet."""
    deadline = time.monotonic() + wait_s
    while True:
        seen = BELL.rings
        events, position = await db.read(partial(read, principal=principal, query=query))
        remaining = deadline - time.monotonic()
        if events or remaining <= 0:
            return EventPage(data=[e for _, e in events], next_cursor=encode_cursor(position))
        query = FeedQuery(position, query.types, query.patient_id, query.limit)
        await BELL.wait(seen, min(remaining, POLL_INTERVAL_S))


async def stream(
    db: Database, *, principal: Principal, query: FeedQuery, max_s: float
) -> AsyncIterator[bytes]:
    """Server-Sent Events: each event with its cursor as the SSE id (so a reconnecting client
    resumes with ``Last-Event-ID``), a comment line when idle. Ends when the client goes, or
    after ``max_s`` seconds (the client reconnects and resumes; no connection lives forever
    behind a proxy)."""
    yield b"retry: 2000\n\n"
    idle_since = started = time.monotonic()
    while time.monotonic() - started < max_s:
        seen = BELL.rings
        events, position = await db.read(partial(read, principal=principal, query=query))
        for at, event in events:
            yield (
                f"id: {encode_cursor(at)}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n"
            ).encode()
        query = FeedQuery(position, query.types, query.patient_id, query.limit)
        if events:
            idle_since = time.monotonic()
            continue
        if time.monotonic() - idle_since >= HEARTBEAT_S:
            yield b": idle\n\n"
            idle_since = time.monotonic()
        await BELL.wait(seen, POLL_INTERVAL_S)
