"""All queries on webhook endpoints, deliveries and attempts."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)

from kap_outcomes.events.models import Event
from kap_outcomes.rows import after_key, before_key, every, first, owned, table_of
from kap_outcomes.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

endpoints = table_of(WebhookEndpoint)
deliveries = table_of(WebhookDelivery)
attempts = table_of(WebhookAttempt)
_events = table_of(Event)

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"


# --- endpoints ----------------------------------------------------------------------------


def insert_endpoint(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(endpoints).values(values))


def get_endpoint(
    conn: Connection, *, organisation_id: str, endpoint_id: str, lock: bool = False
) -> WebhookEndpoint | None:
    return owned(conn, WebhookEndpoint, id=endpoint_id, organisation_id=organisation_id, lock=lock)


def list_endpoints(conn: Connection, *, organisation_id: str) -> list[WebhookEndpoint]:
    query = select(endpoints).where(endpoints.c.organisation_id == organisation_id)
    return every(
        conn, WebhookEndpoint, after_key(query, endpoints.c.created_at, endpoints.c.id, None)
    )


def update_endpoint(
    conn: Connection, *, endpoint_id: str, expected_version: int | None, values: dict[str, Any]
) -> bool:
    query = update(endpoints).where(endpoints.c.id == endpoint_id)
    if expected_version is not None:
        query = query.where(endpoints.c.version == expected_version)
    return bool(conn.execute(query.values(values)).rowcount)


def delete_endpoint(conn: Connection, *, endpoint_id: str) -> None:
    ids = select(deliveries.c.id).where(deliveries.c.endpoint_id == endpoint_id)
    conn.execute(delete(attempts).where(attempts.c.delivery_id.in_(ids)))
    conn.execute(delete(deliveries).where(deliveries.c.endpoint_id == endpoint_id))
    conn.execute(delete(endpoints).where(endpoints.c.id == endpoint_id))


class Subscribed(NamedTuple):
    """An enabled endpoint, as fan-out matches events to it."""

    id: str
    organisation_id: str
    event_types: list[str]
    created_at: datetime


def enabled_endpoints(conn: Connection, *, organisation_ids: Collection[str]) -> list[Subscribed]:
    query = select(*(endpoints.c[name] for name in Subscribed._fields)).where(
        endpoints.c.organisation_id.in_(list(organisation_ids)),
        endpoints.c.enabled.is_(True),
    )
    return [Subscribed._make(row) for row in conn.execute(query)]


# --- deliveries ---------------------------------------------------------------------------


_INSERT_DELIVERIES = insert(deliveries)


def insert_deliveries(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(_INSERT_DELIVERIES, list(rows))


def get_delivery(conn: Connection, *, endpoint_id: str, delivery_id: str) -> WebhookDelivery | None:
    query = select(deliveries).where(
        deliveries.c.id == delivery_id, deliveries.c.endpoint_id == endpoint_id
    )
    return first(conn, WebhookDelivery, query)


def page_deliveries(
    conn: Connection, *, endpoint_id: str, before: tuple[datetime, str] | None, limit: int
) -> list[WebhookDelivery]:
    """Newest first, keyset on (created_at, id)."""
    d = deliveries.c
    query = select(deliveries).where(d.endpoint_id == endpoint_id).order_by(d.endpoint_id)
    query = before_key(query, d.created_at, d.id, before)
    return every(conn, WebhookDelivery, query.limit(limit))


def attempts_of(conn: Connection, delivery_ids: Sequence[str]) -> list[WebhookAttempt]:
    if not delivery_ids:
        return []
    query = select(attempts).where(attempts.c.delivery_id.in_(list(delivery_ids)))
    return every(conn, WebhookAttempt, query.order_by(attempts.c.delivery_id, attempts.c.attempt))


def _due(now: datetime) -> Select[str]:
    d = deliveries.c
    return (
        select(d.id)
        .select_from(deliveries.join(endpoints, endpoints.c.id == d.endpoint_id))
        .where(
            d.status == PENDING,
            d.next_attempt_at <= now,
            or_(d.lease_until.is_(None), d.lease_until < now),
            endpoints.c.enabled.is_(True),
        )
    )


def any_due(conn: Connection, *, now: datetime) -> bool:
    """A read first, so that an idle worker never takes the write lock to find nothing."""
    return conn.execute(_due(now).limit(1)).first() is not None


def claim(conn: Connection, *, owner: str, now: datetime, until: datetime, limit: int) -> list[str]:
    """Lease up to ``limit`` due deliveries to ``owner``: none that another worker holds (its
    rows are skipped while locked, and its lease keeps them afterwards) unless that lease has
    run out (the worker died)."""
    d = deliveries.c
    due = (
        _due(now)
        .order_by(d.next_attempt_at)
        .limit(limit)
        .with_for_update(of=deliveries, skip_locked=True)
    )
    ids = [row[0] for row in conn.execute(due).all()]
    if ids:
        conn.execute(
            update(deliveries).where(d.id.in_(ids)).values(lease_owner=owner, lease_until=until)
        )
    return ids


def _leased_work() -> Select[Any]:
    d, e, ev = deliveries.c, endpoints.c, _events.c
    return (
        select(
            d.id,
            d.attempts,
            d.retry_step,
            d.endpoint_id,
            e.url,
            e.secret,
            e.previous_secret,
            e.previous_secret_until,
            ev.id.label("event_id"),
            ev.type,
            ev.occurred_at,
            ev.organisation_id,
            ev.patient_id,
            ev.resource_type,
            ev.resource_id,
            ev.data,
        )
        .select_from(
            deliveries.join(endpoints, e.id == d.endpoint_id).join(_events, ev.id == d.event_id)
        )
        .where(d.id.in_(bindparam("ids", expanding=True)))
    )


# the statements every delivery passes through, built once (only their parameters change)
_LEASED_WORK = _leased_work()
_INSERT_ATTEMPTS = insert(attempts)
_FINISH_SUCCESSES = (
    update(deliveries)
    .where(
        deliveries.c.id.in_(bindparam("ids", expanding=True)),
        deliveries.c.lease_owner == bindparam("owner"),
    )
    .values(
        status=SUCCEEDED,
        completed_at=bindparam("at"),
        attempts=bindparam("attempt"),
        last_status_code=bindparam("code"),
        last_error=None,
        lease_owner=None,
        lease_until=None,
    )
    .returning(deliveries.c.id)
)
_ENDPOINT_SUCCEEDED = (
    update(endpoints)
    .where(endpoints.c.id == bindparam("endpoint"))
    .values(consecutive_failures=0, last_success_at=bindparam("at"))
)


def leased_work(conn: Connection, *, ids: Sequence[str]) -> list[Any]:
    """What sending a leased delivery needs: the delivery, its endpoint and its event."""
    return list(conn.execute(_LEASED_WORK, {"ids": list(ids)}).all())


def record_attempts(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(_INSERT_ATTEMPTS, list(rows))


def finish_attempt(
    conn: Connection, *, delivery_id: str, owner: str, values: dict[str, Any]
) -> bool:
    """Store the outcome of an attempt, if the lease is still this worker's."""
    return bool(
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery_id, deliveries.c.lease_owner == owner)
            .values(values)
        ).rowcount
    )


def finish_successes(
    conn: Connection,
    *,
    delivery_ids: Sequence[str],
    owner: str,
    attempt: int,
    status_code: int | None,
    at: datetime,
) -> set[str]:
    """Mark deliveries whose attempt number ``attempt`` succeeded with ``status_code`` as
    succeeded, in one statement: the ids of those whose lease was still this worker's (the
    only ones changed)."""
    if not delivery_ids:
        return set()
    rows = conn.execute(
        _FINISH_SUCCESSES,
        {
            "ids": list(delivery_ids),
            "owner": owner,
            "at": at,
            "attempt": attempt,
            "code": status_code,
        },
    ).all()
    return {row[0] for row in rows}


def release(conn: Connection, *, delivery_ids: Sequence[str], owner: str) -> None:
    """Hand back ``owner``'s leases of these deliveries (never attempted): claimable at once."""
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(list(delivery_ids)), deliveries.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


def update_delivery(conn: Connection, *, delivery_id: str, values: dict[str, Any]) -> None:
    conn.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(values))


def endpoint_succeeded(conn: Connection, *, endpoint_id: str, at: datetime) -> None:
    conn.execute(_ENDPOINT_SUCCEEDED, {"endpoint": endpoint_id, "at": at})


def endpoint_failed(
    conn: Connection, *, endpoint_id: str, at: datetime, error: str, disable_reason: str | None
) -> None:
    values: dict[str, Any] = {
        "consecutive_failures": endpoints.c.consecutive_failures + 1,
        "last_failure_at": at,
        "last_error": error[:300],
    }
    if disable_reason is not None:
        values |= {
            "enabled": False,
            "disabled_reason": disable_reason[:500],
            "disabled_at": at,
            "version": endpoints.c.version + 1,
        }
    query = update(endpoints).where(endpoints.c.id == endpoint_id)
    if disable_reason is not None:
        query = query.where(endpoints.c.enabled.is_(True))
    conn.execute(query.values(values))


# --- what the metrics show ----------------------------------------------------------------


def delivery_backlog(conn: Connection, *, now: datetime, cap: int) -> dict[str, int]:
    """Deliveries due now, waiting for a retry after a failed attempt, and given up (each
    counted up to ``cap``; the status index serves all three)."""
    d = deliveries.c
    states = {
        "due": and_(d.status == PENDING, d.next_attempt_at <= now),
        "retrying": and_(d.status == PENDING, d.attempts > 0),
        "failed": d.status == FAILED,
    }
    counts: dict[str, int] = {}
    for state, where in states.items():
        rows = select(d.id).where(where).limit(cap).subquery()
        counts[state] = int(conn.execute(select(func.count()).select_from(rows)).scalar_one())
    return counts


def settled_events(conn: Connection, *, before: datetime, upto: Any, limit: int) -> list[str]:
    """Ids of the oldest events that occurred before ``before``, lie at or before ``upto`` in
    the log (a position every consumer has read), have no delivery still pending and are not
    the newest event of the log."""
    ev, d = _events.c, deliveries.c
    pending = select(d.id).where(d.event_id == ev.id, d.status == PENDING).exists()
    # never the log's newest event: SQLite would hand its sequence number out again (a rowid
    # is max + 1), and a reused number lies behind every consumer's checkpoint
    newest = select(func.max(ev.seq)).scalar_subquery()
    query = (
        select(ev.id)
        .where(
            ev.occurred_at < before,
            tuple_(ev.tx, ev.seq) <= tuple_(upto.tx, upto.seq),
            ev.seq < newest,
            ~pending,
        )
        .order_by(ev.occurred_at)
        .limit(limit)
    )
    return [row[0] for row in conn.execute(query).all()]


def delete_deliveries_of(conn: Connection, *, event_ids: Collection[str]) -> None:
    """The deliveries of these events and their attempts (their history goes with them)."""
    if not event_ids:
        return
    ids = select(deliveries.c.id).where(deliveries.c.event_id.in_(list(event_ids)))
    conn.execute(delete(attempts).where(attempts.c.delivery_id.in_(ids)))
    conn.execute(delete(deliveries).where(deliveries.c.event_id.in_(list(event_ids))))
