"""signal.changed: the booster status or a trend label moved, with from and to."""

from __future__ import annotations

from sqlalchemy import text

from ..processes import wait_for


def _signal_events(tenant, pid):
    resp = tenant.get("/v1/events", params={"types": "signal.changed", "patient_id": pid})
    return resp.json()["data"]


def test_a_first_dose_moves_the_booster_status(tenant, start_worker):
    pid = tenant.patient()
    dose = {
        "kind": "dosing",
        "occurred_at": "2026-03-01T15:00:00Z",
        "dose": {"route": "im", "amount_mg": 50},
    }
    assert tenant.post(f"/v1/patients/{pid}/sessions", dose).status_code == 201
    start_worker()
    (event,) = wait_for(lambda: _signal_events(tenant, pid), timeout=15, what="signal.changed")
    status = tenant.get(f"/v1/patients/{pid}/signals").json()["booster"]["status"]
    # one dose of six: the course is in induction (clinical-rules.md section 5)
    assert status == "in_induction"
    assert event["data"] == {"booster_status": {"from": "not_applicable", "to": "in_induction"}}
    assert event["resource"] == {"type": "signals", "id": pid}


def test_nothing_changes_nothing_is_emitted(tenant, start_worker, db):
    pid = tenant.patient()
    tenant.post(
        f"/v1/patients/{pid}/sessions", {"kind": "intake", "occurred_at": "2026-03-01T15:00:00Z"}
    )
    start_worker()
    # the watch has read past the session: its checkpoint is at or after the event
    position = db.run_read(
        lambda c: tuple(
            c.execute(
                text(
                    "SELECT tx, seq FROM events WHERE patient_id = :p AND type = 'session.recorded'"
                ),
                {"p": pid},
            ).one()
        )
    )
    wait_for(
        lambda: (
            db.run_read(
                lambda c: tuple(
                    c.execute(
                        text("SELECT tx, seq FROM event_consumers WHERE name = 'signals'")
                    ).one()
                )
            )
            >= position
        ),
        timeout=15,
        what="the signal watch to pass the session",
    )
    assert _signal_events(tenant, pid) == []
