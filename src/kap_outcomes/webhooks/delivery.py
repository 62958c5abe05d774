"""Bringing events to endpoints, at least once.

1. **Fan-out** reads the event log after its checkpoint and creates one delivery per
   matching enabled endpoint, in the transaction that moves the checkpoint (one worker at a
   time holds it: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on SQLite), so each
   event is fanned out exactly once.
2. **Claims**: a worker leases due deliveries (``FOR UPDATE SKIP LOCKED``, then a lease
   until a time); two workers never hold the same delivery, and when a worker dies its leases
   run out and another worker takes the deliveries over.
3. **Sending**: signed (Standard Webhooks), through the egress policy; every attempt is
   recorded. A failure is retried on the schedule with jitter; when the schedule is
   exhausted the delivery has failed and the endpoint is disabled, with the reason.

A receiver can rely on: every event it subscribed to arrives at least once, with the event
id as ``webhook-id`` (its idempotency key). It cannot rely on order: deliveries go out
concurrently and a retried event arrives after later ones; ``id`` (time-ordered) and
``occurred_at`` tell the order, and the feed (``GET /v1/events``) gives the log in order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from kap_outcomes.db import new_id, utcnow
from kap_outcomes.events import repository as events_repository
from kap_outcomes.events.models import EventPublic, ResourceRef
from kap_outcomes.webhooks import repository, signing
from kap_outcomes.webhooks.egress import Answer

FAN_OUT = "webhooks"
"""The fan-out's checkpoint in ``event_consumers``."""
BATCH = 500
JITTER = 0.2


@dataclass(frozen=True, slots=True)
class Work:
    """One leased delivery, ready to send."""

    delivery_id: str
    endpoint_id: str
    url: str
    secrets: tuple[str, ...]
    event_id: str
    body: str
    attempts: int
    retry_step: int


@dataclass(frozen=True, slots=True)
class FanOut:
    """What one fan-out transaction did."""

    moved: bool
    """The checkpoint moved (there were events to read)."""
    full: bool
    """It read a whole batch: more events may be waiting."""
    work: list[Work]
    """The deliveries leased to the caller on the way, ready to send."""
    unleased: int
    """Deliveries created but left for a later claim (no room to send them now)."""


NOTHING = FanOut(moved=False, full=False, work=[], unleased=0)


def fan_out(conn: Connection, *, owner: str, lease_until: datetime, lease_limit: int) -> FanOut:
    """One batch of the log into deliveries, in the transaction that moves the checkpoint.
    The first ``lease_limit`` of them are leased to ``owner`` and loaded for sending in the
    same transaction (no second one to claim and read them)."""
    position = events_repository.claim_consumer(conn, name=FAN_OUT)
    if position is None:  # another worker is fanning out
        return NOTHING
    rows = events_repository.following(conn, after=position, limit=BATCH)
    if not rows:
        return NOTHING
    endpoints: dict[str, list[Any]] = {}
    for endpoint in repository.enabled_endpoints(
        conn, organisation_ids={r.organisation_id for r in rows}
    ):
        endpoints.setdefault(endpoint.organisation_id, []).append(endpoint)
    now = utcnow()
    new: list[dict[str, Any]] = []
    for event in rows if endpoints else ():
        for endpoint in endpoints.get(event.organisation_id, ()):
            if event.type in endpoint.event_types and event.occurred_at >= endpoint.created_at:
                leased = len(new) < lease_limit
                new.append(
                    {
                        "id": new_id(),
                        "organisation_id": event.organisation_id,
                        "endpoint_id": endpoint.id,
                        "event_id": event.id,
                        "event_type": event.type,
                        "status": repository.PENDING,
                        "attempts": 0,
                        "retry_step": 0,
                        "next_attempt_at": now,
                        "lease_owner": owner if leased else None,
                        "lease_until": lease_until if leased else None,
                        "created_at": now,
                    }
                )
    repository.insert_deliveries(conn, new)
    last = rows[-1]
    events_repository.advance_consumer(
        conn, name=FAN_OUT, to=events_repository.Position(int(last.tx), int(last.seq))
    )
    leased_ids = [d["id"] for d in new if d["lease_owner"] == owner]
    return FanOut(
        moved=True,
        full=len(rows) == BATCH,
        work=load_work(conn, ids=leased_ids) if leased_ids else [],
        unleased=len(new) - len(leased_ids),
    )


def claim(conn: Connection, *, owner: str, lease_until: datetime, limit: int) -> list[Work]:
    """Lease up to ``limit`` due deliveries to ``owner`` and load them for sending."""
    ids = repository.claim(conn, owner=owner, now=utcnow(), until=lease_until, limit=limit)
    return load_work(conn, ids=ids) if ids else []


def load_work(conn: Connection, *, ids: Sequence[str]) -> list[Work]:
    now = utcnow()
    out = []
    bodies: dict[str, str] = {}  # the body of an event, built once for all its endpoints
    for row in repository.leased_work(conn, ids=ids):
        body = bodies.get(row.event_id)
        if body is None:
            body = bodies[row.event_id] = EventPublic(
                id=row.event_id,
                type=row.type,
                occurred_at=row.occurred_at,
                organisation_id=row.organisation_id,
                patient_id=row.patient_id,
                resource=ResourceRef(type=row.resource_type, id=row.resource_id),
                data=row.data,
            ).model_dump_json()
        secrets = [row.secret]
        if row.previous_secret and row.previous_secret_until and row.previous_secret_until > now:
            secrets.append(row.previous_secret)
        out.append(
            Work(
                delivery_id=row.id,
                endpoint_id=row.endpoint_id,
                url=row.url,
                secrets=tuple(secrets),
                event_id=row.event_id,
                body=body,
                attempts=row.attempts,
                retry_step=row.retry_step,
            )
        )
    return out


def signed_headers(work: Work, at: datetime) -> dict[str, str]:
    return signing.headers(
        secrets_in_force=work.secrets, event_id=work.event_id, at=at, body=work.body
    )


def retry_delay(schedule: Sequence[float], step: int) -> timedelta | None:
    """The wait before the retry after failed step ``step`` (None: the schedule is over)."""
    if step >= len(schedule):
        return None
    return timedelta(seconds=schedule[step] * random.uniform(1 - JITTER, 1 + JITTER))  # noqa: S311


@dataclass(frozen=True, slots=True)
class Attempted:
    """One attempt made, to be recorded."""

    work: Work
    answer: Answer
    at: datetime


def record(
    conn: Connection, *, owner: str, attempts: Sequence[Attempted], schedule: Sequence[float]
) -> None:
    """Store attempts and what follows from each, in one transaction (the worker records
    every attempt that ended while the previous batch was being stored)."""
    repository.record_attempts(
        conn,
        [
            {
                "id": new_id(),
                "delivery_id": a.work.delivery_id,
                "attempt": a.work.attempts + 1,
                "at": a.at,
                "duration_ms": a.answer.duration_ms,
                "status_code": a.answer.status_code,
                "error": a.answer.error,
                "succeeded": a.answer.succeeded,
            }
            for a in attempts
        ],
    )
    now = utcnow()
    finished = _finish_successes(conn, owner=owner, attempts=attempts, now=now)
    succeeded: set[str] = set()  # endpoints whose success is still to be stored
    for a in attempts:
        work, answer = a.work, a.answer
        if answer.succeeded:
            if work.delivery_id in finished:
                succeeded.add(work.endpoint_id)  # one update per endpoint and batch
            continue
        common = {
            "attempts": work.attempts + 1,
            "last_status_code": answer.status_code,
            "last_error": answer.error,
            "lease_owner": None,
            "lease_until": None,
        }
        delay = retry_delay(schedule, work.retry_step)
        if delay is None:
            values = common | {"status": repository.FAILED, "completed_at": now}
        else:
            values = common | {"next_attempt_at": now + delay, "retry_step": work.retry_step + 1}
        if not repository.finish_attempt(
            conn, delivery_id=work.delivery_id, owner=owner, values=values
        ):
            continue  # the lease ran out and another worker owns the delivery now
        if work.endpoint_id in succeeded:  # in order: the earlier success, then this failure
            succeeded.discard(work.endpoint_id)
            repository.endpoint_succeeded(conn, endpoint_id=work.endpoint_id, at=now)
        reason = None
        if delay is None:
            hours = sum(schedule) / 3600
            reason = (
                f"Disabled: delivery of event {work.event_id} failed {work.attempts + 1} times "
                f"over {hours:.3g} h; last error: {answer.error}."
            )
        repository.endpoint_failed(
            conn,
            endpoint_id=work.endpoint_id,
            at=now,
            error=answer.error or "",
            disable_reason=reason,
        )
    for endpoint_id in succeeded:
        repository.endpoint_succeeded(conn, endpoint_id=endpoint_id, at=now)


def _finish_successes(
    conn: Connection, *, owner: str, attempts: Sequence[Attempted], now: datetime
) -> set[str]:
    """Mark the batch's successful deliveries succeeded, one statement per (attempt number,
    status code), nearly always one in all: the ids whose lease was still ``owner``'s."""
    groups: dict[tuple[int, int | None], list[str]] = {}
    for a in attempts:
        if a.answer.succeeded:
            key = (a.work.attempts + 1, a.answer.status_code)
            groups.setdefault(key, []).append(a.work.delivery_id)
    finished: set[str] = set()
    for (attempt, status_code), ids in groups.items():
        finished |= repository.finish_successes(
            conn, delivery_ids=ids, owner=owner, attempt=attempt, status_code=status_code, at=now
        )
    return finished
