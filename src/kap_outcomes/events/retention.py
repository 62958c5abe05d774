"""How long the event log keeps its events.

Events older than the retention (``KAP_EVENTS_RETENTION_DAYS``, 30 days by default) are
deleted by the worker, a bounded batch per transaction, together with the history of their
webhook deliveries (deliveries and attempts). Never an event that a consumer of the log (the
webhook fan-out, the signal watch) has not read yet, nor one with a delivery still pending:
an event leaves the log only once everything it had to cause has happened.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from kap_outcomes.events import repository
from kap_outcomes.webhooks import repository as webhooks_repository

BATCH = 1000
"""Events deleted per transaction (a short one: the writers wait for it on SQLite)."""


def prune(conn: Connection, *, before: datetime, limit: int = BATCH) -> int:
    """Delete up to ``limit`` settled events that occurred before ``before``; how many."""
    upto = repository.oldest_checkpoint(conn)
    ids = webhooks_repository.settled_events(conn, before=before, upto=upto, limit=limit)
    webhooks_repository.delete_deliveries_of(conn, event_ids=ids)
    repository.delete_events(conn, ids=ids)
    return len(ids)


def any_due(conn: Connection, *, before: datetime) -> bool:
    """A read first, so that an idle worker never takes the write lock to find nothing."""
    upto = repository.oldest_checkpoint(conn)
    return bool(webhooks_repository.settled_events(conn, before=before, upto=upto, limit=1))
