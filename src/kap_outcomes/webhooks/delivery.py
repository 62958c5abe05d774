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


def fan_out(
    conn: Connection, *, owner: str, lease_until: datetime, lease_limit: int
) -> tuple[bool, list[str]]:
    """One batch of the log into deliveries: (did it move, the deliveries leased to
    ``owner`` on the way, which it sends right away without another transaction)."""
    position = events_repository.claim_consumer(conn, name=FAN_OUT)
    if position is None:  # another worker is fanning out
        return False, []
    rows = events_repository.following(conn, after=position, limit=BATCH)
    if not rows:
        return False, []
    endpoints: dict[str, list[Any]] = {}
    for endpoint in repository.enabled_endpoints(
        conn, organisation_ids={r.organisation_id for r in rows}
    ):
        endpoints.setdefault(endpoint.organisation_id, []).append(endpoint)
    now = utcnow()
    new: list[dict[str, Any]] = []
    for event in rows:
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
    return True, [d["id"] for d in new if d["lease_owner"] == owner]


def claim(conn: Connection, *, owner: str, lease_until: datetime, limit: int) -> list[str]:
    return repository.claim(conn, owner=owner, now=utcnow(), until=lease_until, limit=limit)


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


def load_work(conn: Connection, *, ids: Sequence[str]) -> list[Work]:
    now = utcnow()
    out = []
    for row in repository.leased_work(conn, ids=ids):
        event = EventPublic(
            id=row.event_id,
            type=row.type,
            occurred_at=row.occurred_at,
            organisation_id=row.organisation_id,
            patient_id=row.patient_id,
            resource=ResourceRef(type=row.resource_type, id=row.resource_id),
            data=row.data,
        )
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
                body=event.model_dump_json(),
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


def record(
    conn: Connection,
    *,
    owner: str,
    work: Work,
    answer: Answer,
    at: datetime,
    schedule: Sequence[float],
) -> None:
    """Store one attempt and what follows from it, in one transaction."""
    attempt = work.attempts + 1
    repository.record_attempt(
        conn,
        {
            "id": new_id(),
            "delivery_id": work.delivery_id,
            "attempt": attempt,
            "at": at,
            "duration_ms": answer.duration_ms,
            "status_code": answer.status_code,
            "error": answer.error,
            "succeeded": answer.succeeded,
        },
    )
    now = utcnow()
    common = {
        "attempts": attempt,
        "last_status_code": answer.status_code,
        "last_error": answer.error,
        "lease_owner": None,
        "lease_until": None,
    }
    if answer.succeeded:
        values = common | {"status": repository.SUCCEEDED, "completed_at": now}
        if repository.finish_attempt(
            conn, delivery_id=work.delivery_id, owner=owner, values=values
        ):
            repository.endpoint_succeeded(conn, endpoint_id=work.endpoint_id, at=now)
        return
    delay = retry_delay(schedule, work.retry_step)
    if delay is None:
        values = common | {"status": repository.FAILED, "completed_at": now}
    else:
        values = common | {"next_attempt_at": now + delay, "retry_step": work.retry_step + 1}
    if not repository.finish_attempt(
        conn, delivery_id=work.delivery_id, owner=owner, values=values
    ):
        return  # the lease ran out and another worker owns the delivery now
    reason = None
    if delay is None:
        hours = sum(schedule) / 3600
        reason = (
            f"Disabled: delivery of event {work.event_id} failed {attempt} times over "
            f"{hours:.3g} h; last error: {answer.error}."
        )
    repository.endpoint_failed(
        conn, endpoint_id=work.endpoint_id, at=now, error=answer.error or "", disable_reason=reason
    )
