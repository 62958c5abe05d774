"""signal.changed: the booster status or a trend label moved, with from and to."""

from __future__ import annotations

import random

from sqlalchemy import text

from kap_outcomes.clinical.points import ScorePoint
from kap_outcomes.clinical.trend import trend
from kap_outcomes.db import utcnow
from kap_outcomes.policy import service as policy_service
from kap_outcomes.signals import service as signals_service
from kap_outcomes.signals import watch

from ..api.course import Clinic
from ..processes import wait_for


def _points(data, instrument):
    return [ScorePoint(r.id, r.administered_at, r.total) for r in data.scores[instrument]]


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


# --- long histories: the watch reads a bounded suffix, with the outcome of the whole -----

INITIAL = {
    "booster_status": "not_applicable",
    "phq9_trend": "insufficient_data",
    "gad7_trend": "insufficient_data",
}


def _long_histories(tenant) -> list[Clinic]:
    """Three patients with years of scores (day 0 is 60 days ago, see tests/api/course.py):
    one without a course, whose GAD-7s all lie two years back; one with a course,
    its baseline, six doses and a relapse after years of earlier scores; one whose latest
    PHQ-9s are too few within the trend window while hundreds precede them."""
    rng = random.Random(11)
    plain, course, gap = Clinic(tenant), Clinic(tenant), Clinic(tenant)
    for i in range(140):
        plain.phq9(-1000 + 7 * i, rng.randint(3, 22))
    for total, day in zip((8, 11, 14, 17, 20), (-10, 0, 10, 20, 30), strict=True):
        plain.phq9(day, total)  # worsening over the last five
    for i in range(25):
        plain.gad7(-1000 + 10 * i, rng.randint(2, 18))
    for i, total in enumerate((15, 12, 9, 6, 3)):
        plain.gad7(-740 + 7 * i, total)  # improving, though long ago (the window is the
        # latest five within 56 days of the latest GAD-7, whenever that was)
    for i in range(100):
        course.phq9(-900 + 8 * i, rng.randint(3, 22))
        course.gad7(-900 + 8 * i + 1, rng.randint(2, 18))
    course.phq9(-1, 20)  # the baseline, the day before the first dose
    course.gad7(-1, 16)
    for day in (0, 2, 4, 7, 9, 11):
        course.dose(day)
    for day, total in ((14, 6), (18, 5), (25, 14), (32, 16), (39, 17)):
        course.phq9(day, total)
    for day, total in ((14, 5), (25, 9), (39, 13)):
        course.gad7(day, total)
    for i in range(120):
        gap.phq9(-900 + 6 * i, rng.randint(3, 22))
        gap.gad7(-900 + 6 * i, rng.randint(2, 18))
    gap.phq9(40, 12)  # two PHQ-9s within 56 days of the latest: too few for a trend
    gap.phq9(50, 4)
    for day, total in ((20, 4), (30, 9), (45, 15)):
        gap.gad7(day, total)
    return [plain, course, gap]


def test_the_watch_loads_a_bounded_suffix_with_the_outcome_of_the_whole_history(tenant, db):
    """Differential: the rules on what ``load_recent`` reads against the rules on every row
    (``load_many``, what the API reads): same booster status and trend results, from a
    fraction of the rows."""
    patients = [c.pid for c in _long_histories(tenant)]
    now = utcnow()

    def compare(conn):
        policy = policy_service.current_policy(conn, organisation_id=tenant.org_id)[1]
        full = signals_service.load_many(conn, patient_ids=patients)
        recent = watch.load_recent(
            conn, patient_ids=patients, policies=dict.fromkeys(patients, policy)
        )
        for pid in patients:
            whole, part = full[pid], recent[pid]
            assert sum(map(len, part.scores.values())) < sum(map(len, whole.scores.values())) / 4
            assert part.doses == whole.doses and part.course == whole.course
            for instrument in ("phq9", "gad7"):
                a = signals_service.booster(whole, instrument, now, policy)
                b = signals_service.booster(part, instrument, now, policy)
                assert a.status == b.status
                if whole.doses:  # past the first dose the whole signal agrees, not only its status
                    assert a == b
                assert trend(instrument, _points(whole, instrument), policy) == trend(
                    instrument, _points(part, instrument), policy
                )
        return [signals_service.booster(full[p], "phq9", now, policy).status for p in patients]

    statuses = db.run_read(compare)
    assert statuses == ["not_applicable", "consider_booster", "not_applicable"]


def test_a_long_history_gets_the_signal_changed_of_the_whole_history(tenant, start_worker):
    """End to end: each patient's ``signal.changed`` says what the API's signals and trends
    (computed from every row) say now, from the state a new patient starts with."""
    clinics = _long_histories(tenant)
    start_worker()
    for clinic in clinics:
        (event,) = wait_for(
            lambda c=clinic: _signal_events(tenant, c.pid), timeout=30, what="signal.changed"
        )
        now = {
            "booster_status": clinic.signals()["booster"]["status"],
            "phq9_trend": clinic.trend("phq9")["trend"]["label"],
            "gad7_trend": clinic.trend("gad7")["trend"]["label"],
        }
        expected = {k: {"from": INITIAL[k], "to": v} for k, v in now.items() if v != INITIAL[k]}
        assert event["data"] == expected
    # what the three histories were built to show
    assert [e["data"] for c in clinics for e in _signal_events(tenant, c.pid)] == [
        {
            "phq9_trend": {"from": "insufficient_data", "to": "worsening"},
            "gad7_trend": {"from": "insufficient_data", "to": "improving"},
        },
        {
            "booster_status": {"from": "not_applicable", "to": "consider_booster"},
            "phq9_trend": {"from": "insufficient_data", "to": "worsening"},
            "gad7_trend": {"from": "insufficient_data", "to": "worsening"},
        },
        {"gad7_trend": {"from": "insufficient_data", "to": "worsening"}},
    ]
