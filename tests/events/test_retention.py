"""Events retention: the worker deletes events past KAP_EVENTS_RETENTION_DAYS with their
delivery history, a batch at a time, but never one with a delivery still pending nor one a
consumer of the log has not read yet."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import text

from kap_outcomes import worker
from kap_outcomes.auth.models import Role
from kap_outcomes.db import Database, utcnow
from kap_outcomes.events import retention

from ..processes import wait_for
from .receiver import Receiver

LOOPBACK = ["127.0.0.0/8"]
PHQ9_ITEM9 = {
    "instrument": "phq9",
    "items": [1, 1, 1, 1, 1, 1, 1, 1, 2],
    "administered_at": "2026-03-02T15:04:05Z",
}


def _event_ids(db: Database, org_id: str) -> dict[tuple[str, str], str]:
    """(type, resource id) -> event id, for the organisation's events still in the log."""
    rows = db.run_read(
        lambda conn: conn.execute(
            text("SELECT type, resource_id, id FROM events WHERE organisation_id = :o"),
            {"o": org_id},
        ).all()
    )
    return {(r.type, r.resource_id): r.id for r in rows}


def _count(db: Database, sql: str, **params: Any) -> int:
    return int(db.run_read(lambda conn: conn.execute(text(sql), params).scalar_one()))


def _age(db: Database, org_id: str, days: int) -> None:
    """Move the organisation's events back in time, as if they had occurred ``days`` ago."""
    db.run_write(
        lambda conn: conn.execute(
            text("UPDATE events SET occurred_at = :at WHERE organisation_id = :o"),
            {"at": (utcnow() - timedelta(days=days)).replace(tzinfo=None), "o": org_id},
        )
    )


def _consumers_past(db: Database, event_id: str) -> bool:
    """Has every consumer of the log read up to this event?"""
    return (
        _count(
            db,
            "SELECT count(*) FROM event_consumers c, events e WHERE e.id = :e"
            " AND (c.tx < e.tx OR (c.tx = e.tx AND c.seq < e.seq))",
            e=event_id,
        )
        == 0
    )


def test_old_settled_events_are_pruned_pending_and_unread_ones_stay(
    tenant, db: Database, receiver: Receiver, start_worker, monkeypatch
) -> None:
    # the worker looks for prunable events once a minute; here every half second, so the
    # second worker finds the event once it has read the backlog other tests left in the log
    monkeypatch.setattr(worker, "RETENTION_INTERVAL_S", 0.5)
    failing = Receiver(respond=lambda n: 500)
    try:
        ok_hook = tenant.post(
            "/v1/webhooks",
            {"url": receiver.url, "event_types": ["assessment.submitted"]},
            role=Role.admin,
        ).json()
        failing_hook = tenant.post(
            "/v1/webhooks",
            {"url": failing.url, "event_types": ["alert.opened"]},
            role=Role.admin,
        ).json()
        settings = {"webhook_allowed_networks": LOOPBACK, "webhook_retry_schedule_s": [3600.0]}
        first = start_worker(**settings)
        patient = tenant.patient()
        created = tenant.post(f"/v1/patients/{patient}/assessments", PHQ9_ITEM9).json()
        alert_id = created["alerts"][0]["id"]
        events = _event_ids(db, tenant.org_id)
        submitted = events[("assessment.submitted", created["id"])]
        opened = events[("alert.opened", alert_id)]
        patient_created = events[("patient.created", patient)]

        def settled() -> bool:
            delivered = _count(
                db,
                "SELECT count(*) FROM webhook_deliveries WHERE event_id = :e AND status = "
                "'succeeded'",
                e=submitted,
            )
            tried = _count(
                db,
                "SELECT count(*) FROM webhook_deliveries WHERE event_id = :e AND attempts = 1"
                " AND status = 'pending'",
                e=opened,
            )
            return delivered == 1 and tried == 1 and _consumers_past(db, opened)

        wait_for(settled, timeout=60, what="one delivery done, one pending, the log read")
        first.stop()

        unread = tenant.patient()  # after every consumer's checkpoint
        unread_event = _event_ids(db, tenant.org_id)[("patient.created", unread)]
        _age(db, tenant.org_id, days=40)
        recent = tenant.patient()  # occurred now

        # called directly, as the worker calls it
        pruned = db.run_write(partial(retention.prune, before=utcnow() - timedelta(days=30)))
        left = set(_event_ids(db, tenant.org_id).values())
        assert submitted not in left and patient_created not in left
        assert pruned >= 2
        assert opened in left  # its delivery is still pending (retried in an hour)
        assert unread_event in left  # no consumer has read it yet
        assert ("patient.created", recent) in _event_ids(db, tenant.org_id)
        # the delivered event's delivery history went with it; the pending one is untouched
        assert (
            _count(db, "SELECT count(*) FROM webhook_deliveries WHERE event_id = :e", e=submitted)
            == 0
        )
        assert (
            _count(
                db,
                "SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d"
                " ON d.id = a.delivery_id WHERE d.endpoint_id = :h",
                h=ok_hook["id"],
            )
            == 0
        )
        assert (
            len(
                tenant.get(f"/v1/webhooks/{failing_hook['id']}/deliveries", role=Role.admin).json()[
                    "data"
                ]
            )
            == 1
        )
        # the record itself is not the event log: the assessment and its alert stay
        assert tenant.get(f"/v1/assessments/{created['id']}").status_code == 200

        # the worker does the same on its own once it has read the rest of the log
        start_worker(**settings)
        wait_for(
            lambda: unread_event not in set(_event_ids(db, tenant.org_id).values()),
            timeout=180,
            what="the worker to prune the event it has now read",
        )
        left = _event_ids(db, tenant.org_id)
        assert opened in left.values() and ("patient.created", recent) in left
    finally:
        failing.close()


def test_a_large_backlog_is_pruned_in_bounded_batches(tenant, make_tenant, db: Database) -> None:
    """Each call deletes at most its batch; repeated calls finish the work. The log's newest
    event stays, however old: SQLite would otherwise number the next event with a sequence
    number every consumer has read past already."""
    for _ in range(5):
        tenant.patient()
    _age(db, tenant.org_id, days=400)
    head = make_tenant()
    head.patient()  # the log's newest event, in another organisation
    _age(db, head.org_id, days=400)
    # every consumer has read them (as a worker would have)
    db.run_write(
        lambda conn: conn.execute(
            text(
                "UPDATE event_consumers SET tx = (SELECT max(tx) FROM events),"
                " seq = (SELECT max(seq) FROM events)"
            )
        )
    )
    before = utcnow() - timedelta(days=30)
    counts = []
    while len(counts) < 10 and (
        n := db.run_write(partial(retention.prune, before=before, limit=2))
    ):
        counts.append(n)
    assert max(counts) == 2 and sum(counts) >= 5
    assert _event_ids(db, tenant.org_id) == {}
    assert len(_event_ids(db, head.org_id)) == 1  # the newest: kept
    # and the next event comes after it, where the consumers will read it
    newest = db.run_read(lambda conn: conn.execute(text("SELECT max(seq) FROM events")).scalar())
    head.patient()
    assert (
        db.run_read(lambda conn: conn.execute(text("SELECT max(seq) FROM events")).scalar())
        > newest
    )
