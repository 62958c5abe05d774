"""Corrections of sessions through HTTP (clinical-rules.md section 8): ETag / If-Match, amend,
retract, history; duplicate doses refused; every signal follows the latest standing version.

Expected statuses are the section 5 worked example (tests/api/test_signals.py), by hand:
six doses on days 1, 3, 5, 8, 10, 12 complete induction; PHQ-9 6 and 7 after the sixth dose
are `stable`; before the sixth dose there is nothing to judge (`pending`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kap_outcomes.auth.models import Role
from tests.api.course import START, T0, Clinic, _day, _iso

INDUCTION_DAYS = (1, 3, 5, 8, 10, 12)


def _dose(clinic: Clinic, at: str, kind: str = "dosing", **extra) -> object:
    body = {"kind": kind, "occurred_at": at, "dose": {"route": "iv", "amount_mg": 35}} | extra
    return clinic.tenant.post(f"/v1/patients/{clinic.pid}/sessions", body)


def _dose_ok(clinic: Clinic, day: float, kind: str = "dosing") -> dict:
    resp = _dose(clinic, _day(day), kind)
    assert resp.status_code == 201, resp.text
    assert resp.headers["ETag"] == '"1"'
    return resp.json()


def _correct(tenant, sid: str, action: str, body: dict, etag: str | None, role=Role.clinician):
    headers = tenant.headers(role) | ({"If-Match": etag} if etag is not None else {})
    return tenant.client.post(f"/v1/sessions/{sid}/{action}", json=body, headers=headers)


def _etag(tenant, sid: str) -> str:
    resp = tenant.get(f"/v1/sessions/{sid}")
    assert resp.status_code == 200, resp.text
    return resp.headers["ETag"]


def _listed(clinic: Clinic) -> list[dict]:
    resp = clinic.tenant.get(f"/v1/patients/{clinic.pid}/sessions")
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


# --- duplicate doses ----------------------------------------------------------------------


def test_a_dose_entered_twice_is_refused_naming_the_first(tenant):
    clinic = Clinic(tenant)
    first = _dose_ok(clinic, 1)
    again = _dose(clinic, _iso(T0 + timedelta(days=1, minutes=59)))
    assert again.status_code == 409, again.text
    problem = again.json()
    assert again.headers["content-type"] == "application/problem+json"
    assert problem["type"].endswith("/duplicate-session")
    assert problem["duplicate_of"] == first["id"]
    assert first["id"] in problem["detail"]
    # a booster counts as a dose too, and earlier counts as well as later
    booster = _dose(clinic, _iso(T0 + timedelta(days=1, minutes=-30)), kind="booster")
    assert booster.status_code == 409
    assert [s["id"] for s in _listed(clinic)] == [first["id"]]  # nothing stored
    assert "1 of 6 induction doses" in clinic.signals()["booster"]["reasons"][0]["detail"]


def test_sixty_minutes_apart_or_marked_distinct_is_a_second_dose(tenant):
    clinic = Clinic(tenant)
    _dose_ok(clinic, 1)
    hour_later = _dose(clinic, _iso(T0 + timedelta(days=1, minutes=60)))
    assert hour_later.status_code == 201, hour_later.text
    distinct = _dose(clinic, _iso(T0 + timedelta(days=1, minutes=20)), distinct=True)
    assert distinct.status_code == 201, distinct.text
    assert "3 of 6 induction doses" in clinic.signals()["booster"]["reasons"][0]["detail"]
    # other kinds of session are never duplicates of a dose
    body = {"kind": "integration", "occurred_at": _day(1)}
    assert tenant.post(f"/v1/patients/{clinic.pid}/sessions", body).status_code == 201


def test_an_idempotent_retry_replays_rather_than_being_a_duplicate(tenant):
    clinic = Clinic(tenant)
    body = {"kind": "dosing", "occurred_at": _day(1), "dose": {"route": "iv", "amount_mg": 35}}
    headers = tenant.headers() | {"Idempotency-Key": "dose-day-1-retry"}
    path = f"/v1/patients/{clinic.pid}/sessions"
    first = tenant.client.post(path, json=body, headers=headers)
    retry = tenant.client.post(path, json=body, headers=headers)
    assert (first.status_code, retry.status_code) == (201, 201), retry.text
    assert retry.json()["id"] == first.json()["id"]
    assert len(_listed(clinic)) == 1


def test_a_retracted_dose_is_no_duplicate(tenant):
    clinic = Clinic(tenant)
    first = _dose_ok(clinic, 1)
    resp = _correct(tenant, first["id"], "retract", {"reason": "wrong patient"}, '"1"')
    assert resp.status_code == 200, resp.text
    assert _dose(clinic, _day(1)).status_code == 201


def test_amending_a_dose_onto_another_is_a_duplicate(tenant):
    clinic = Clinic(tenant)
    first = _dose_ok(clinic, 1)
    second = _dose_ok(clinic, 3)
    body = {"occurred_at": _iso(T0 + timedelta(days=1, minutes=10)), "reason": "typo"}
    resp = _correct(tenant, second["id"], "amend", body, '"1"')
    assert resp.status_code == 409 and resp.json()["duplicate_of"] == first["id"]
    assert _etag(tenant, second["id"]) == '"1"'  # unchanged
    # moving a dose by a few minutes does not collide with itself
    body = {"occurred_at": _iso(T0 + timedelta(days=3, minutes=10)), "reason": "clock"}
    assert _correct(tenant, second["id"], "amend", body, '"1"').status_code == 200


def test_the_same_dose_sent_at_once_is_stored_once(tenant):
    clinic = Clinic(tenant)

    def send(n: int):
        return _dose(clinic, _iso(T0 + timedelta(days=1, minutes=n)))

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = sorted(r.status_code for r in pool.map(send, range(6)))
    assert statuses == [201] + [409] * 5
    assert len(_listed(clinic)) == 1


def test_concurrent_corrections_of_one_version_one_wins(tenant):
    clinic = Clinic(tenant)
    sid = _dose_ok(clinic, 1)["id"]

    def amend(n: int):
        body = {"occurred_at": _day(2 + n), "reason": f"attempt {n}"}
        return _correct(tenant, sid, "amend", body, '"1"')

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = sorted(r.status_code for r in pool.map(amend, range(6)))
    assert statuses == [200] + [412] * 5
    history = tenant.get(f"/v1/sessions/{sid}/history").json()
    assert [v["version"] for v in history["versions"]] == [1, 2]


# --- corrections --------------------------------------------------------------------------


def test_a_dose_on_the_wrong_day_amended_and_the_booster_status_follows(tenant):
    clinic = Clinic(tenant)
    clinic.phq9(0, 22)
    doses = [_dose_ok(clinic, day) for day in INDUCTION_DAYS[:5]]
    wrong = _dose_ok(clinic, 52)  # the sixth dose, given on day 12, entered as day 52
    clinic.phq9(13, 6)
    clinic.phq9(20, 7)
    # as entered, the latest dose is day 52 and no PHQ-9 follows it: nothing to judge
    assert clinic.status() == ("pending", ["awaiting_measure"])
    assert clinic.signals()["booster"]["days_since_last_dose"] == START - 52

    etag = _etag(tenant, wrong["id"])
    body = {"occurred_at": _day(12), "reason": "entered on the wrong day"}
    resp = _correct(tenant, wrong["id"], "amend", body, etag)
    assert resp.status_code == 200, resp.text
    amended = resp.json()
    assert (amended["version"], amended["status"]) == (2, "amended")
    assert amended["occurred_at"].startswith(_day(12)[:19])
    assert amended["dose"] == {"route": "iv", "amount_mg": 35.0}  # left out: unchanged
    assert resp.headers["ETag"] == '"2"'
    signals = clinic.signals()
    assert clinic.status() == ("stable", ["stable"])
    assert signals["booster"]["days_since_last_dose"] == START - 12
    assert [s["total"] for s in signals["booster"]["scores_used"]] == [6, 7]
    # the caseload (a stored summary) follows the correction too
    rows = tenant.get("/v1/caseload").json()["data"]
    assert {r["patient_id"]: r["booster_status"] for r in rows}[clinic.pid] == "stable"
    assert len(doses) == 5


def test_a_retracted_dose_leaves_induction(tenant):
    clinic = Clinic(tenant)
    clinic.phq9(0, 22)
    doses = [_dose_ok(clinic, day) for day in INDUCTION_DAYS]
    assert clinic.status() == ("pending", ["awaiting_measure"])
    assert tenant.get("/v1/caseload").json()["data"][0]["booster_status"] == "pending"

    resp = _correct(tenant, doses[2]["id"], "retract", {"reason": "entered twice"}, '"1"')
    assert resp.status_code == 200, resp.text
    assert (resp.json()["version"], resp.json()["status"]) == (2, "entered-in-error")
    booster = clinic.signals()["booster"]
    assert booster["status"] == "in_induction"
    assert "5 of 6 induction doses" in booster["reasons"][0]["detail"]
    rows = tenant.get("/v1/caseload").json()["data"]
    assert {r["patient_id"]: r["booster_status"] for r in rows}[clinic.pid] == "in_induction"
    # the session stays readable, marked, and cannot be corrected again
    got = tenant.get(f"/v1/sessions/{doses[2]['id']}")
    assert (got.json()["status"], got.headers["ETag"]) == ("entered-in-error", '"2"')
    again = _correct(tenant, doses[2]["id"], "retract", {"reason": "again"}, '"2"')
    assert again.status_code == 409


def test_retracting_the_first_dose_moves_the_baseline(tenant):
    clinic = Clinic(tenant)
    clinic.phq9(0, 22)
    first = _dose_ok(clinic, 1)
    clinic.phq9(2, 18)  # after the first dose: not a baseline while day 1 stands
    _dose_ok(clinic, 3)
    assert clinic.trend()["baseline"]["total"] == 22
    _correct(tenant, first["id"], "retract", {"reason": "never given"}, '"1"')
    # now the first dose is day 3: the latest score at or before it is 18 (day 2)
    assert clinic.trend()["baseline"]["total"] == 18


def test_history_keeps_every_version(tenant):
    clinic = Clinic(tenant)
    sid = _dose_ok(clinic, 1)["id"]
    steps = [
        ("amend", {"occurred_at": _day(2), "reason": "wrong day"}),
        ("amend", {"dose": {"route": "im", "amount_mg": 50}, "reason": "wrong dose"}),
        ("amend", {"kind": "integration", "dose": None, "reason": "no dose was given"}),
        ("retract", {"reason": "wrong patient"}),
    ]
    for number, (action, body) in enumerate(steps, start=1):
        resp = _correct(tenant, sid, action, body, f'"{number}"')
        assert resp.status_code == 200, resp.text
    resp = tenant.get(f"/v1/sessions/{sid}/history")
    assert resp.status_code == 200, resp.text
    history = resp.json()
    assert history["session_id"] == sid and history["current_version"] == 5
    versions = history["versions"]
    assert [v["version"] for v in versions] == [1, 2, 3, 4, 5]
    assert [v["status"] for v in versions] == [
        "final",
        "amended",
        "amended",
        "amended",
        "entered-in-error",
    ]
    assert [v["reason"] for v in versions] == [
        None,
        "wrong day",
        "wrong dose",
        "no dose was given",
        "wrong patient",
    ]
    assert [v["occurred_at"][:10] for v in versions] == [_day(1)[:10]] + [_day(2)[:10]] * 4
    assert [v["kind"] for v in versions] == ["dosing"] * 3 + ["integration"] * 2
    assert [v["dose"] for v in versions] == [
        {"route": "iv", "amount_mg": 35.0},
        {"route": "iv", "amount_mg": 35.0},
        {"route": "im", "amount_mg": 50.0},
        None,
        None,
    ]
    assert all(v["recorded_by"] for v in versions)
    # the list shows the current version
    listed = _listed(clinic)
    assert [(s["id"], s["status"], s["version"]) for s in listed] == [(sid, "entered-in-error", 5)]


def test_corrections_need_if_match_and_refuse_a_stale_one(tenant):
    clinic = Clinic(tenant)
    sid = _dose_ok(clinic, 1)["id"]
    body = {"occurred_at": _day(2), "reason": "wrong day"}
    missing = _correct(tenant, sid, "amend", body, None)
    assert missing.status_code == 428
    assert missing.headers["content-type"] == "application/problem+json"
    stale = _correct(tenant, sid, "amend", body, '"7"')
    assert stale.status_code == 412
    assert _correct(tenant, sid, "retract", {"reason": "x"}, None).status_code == 428
    history = tenant.get(f"/v1/sessions/{sid}/history").json()
    assert [v["version"] for v in history["versions"]] == [1]
    assert tenant.get(f"/v1/patients/{clinic.pid}/sessions/{sid}").headers["ETag"] == '"1"'


def test_a_correction_is_checked_like_a_new_session(tenant):
    clinic = Clinic(tenant)
    sid = _dose_ok(clinic, 1)["id"]
    for body in (
        {"reason": "x", "kind": "integration"},  # keeps its dose: refused, a dose needs a dose kind
        {"reason": "x", "dose": None},  # a dosing session without a dose
        {"reason": ""},
        {"occurred_at": _day(2)},  # no reason
        {"reason": "x", "occurred_at": "2999-01-01T00:00:00Z"},
        {"reason": "x", "course_id": "c"},
    ):
        resp = _correct(tenant, sid, "amend", body, '"1"')
        assert resp.status_code == 422, (body, resp.text)
    assert _etag(tenant, sid) == '"1"'


def test_sessions_of_another_organisation_are_not_found(tenant, make_tenant):
    clinic = Clinic(tenant)
    sid = _dose_ok(clinic, 1)["id"]
    other = make_tenant()
    assert other.get(f"/v1/sessions/{sid}").status_code == 404
    assert other.get(f"/v1/sessions/{sid}/history").status_code == 404
    body = {"occurred_at": _day(2), "reason": "wrong day"}
    assert _correct(other, sid, "amend", body, '"1"').status_code == 404
    assert _correct(other, sid, "retract", {"reason": "x"}, "*").status_code == 404
    assert _etag(tenant, sid) == '"1"'


# --- property -----------------------------------------------------------------------------


def _comparable(clinic: Clinic) -> tuple:
    signals = clinic.signals()
    signals.pop("computed_at")
    trends = [clinic.trend(instrument) for instrument in ("phq9", "gad7")]
    return signals, trends


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    dose_days=st.lists(st.integers(0, 58), min_size=1, max_size=9, unique=True),
    scores=st.lists(st.tuples(st.integers(0, 59), st.integers(0, 24)), max_size=8),
    kinds=st.lists(st.sampled_from(["dosing", "booster"]), min_size=9, max_size=9),
    pick=st.integers(0, 8),
)
def test_retracting_and_re_entering_a_session_changes_no_signal(
    tenant, dose_days, scores, kinds, pick
):
    clinic = Clinic(tenant)
    for day, total in scores:
        clinic.phq9(day, total)
        clinic.gad7(day, min(total, 18))
    sessions = [_dose_ok(clinic, day, kind) for day, kind in zip(dose_days, kinds, strict=False)]
    before = _comparable(clinic)
    chosen = sessions[pick % len(sessions)]
    resp = _correct(tenant, chosen["id"], "retract", {"reason": "entered in error"}, '"1"')
    assert resp.status_code == 200, resp.text
    again = _dose(clinic, chosen["occurred_at"], chosen["kind"])
    assert again.status_code == 201, again.text
    assert _comparable(clinic) == before


def test_every_session_route_is_audited_once_with_its_patient(tenant, db):
    from sqlalchemy import text

    clinic = Clinic(tenant)
    sid = _dose_ok(clinic, 1)["id"]
    calls = [
        ("GET", f"/v1/sessions/{sid}", None),
        ("POST", f"/v1/sessions/{sid}/amend", {"occurred_at": _day(2), "reason": "day"}),
        ("GET", f"/v1/sessions/{sid}/history", None),
        ("POST", f"/v1/sessions/{sid}/retract", {"reason": "error"}),
        ("POST", f"/v1/sessions/{sid}/amend", {"reason": "refused: retracted"}),
    ]
    for number, (method, path, body) in enumerate(calls):
        rid = f"session-audit-{number}-{sid}"
        current = tenant.get(f"/v1/sessions/{sid}").headers["ETag"]
        headers = tenant.headers() | {"If-Match": current, "X-Request-ID": rid}
        resp = tenant.client.request(method, path, json=body, headers=headers)
        assert resp.status_code in (200, 409), resp.text
        rows = db.run_read(
            lambda c, r=rid: c.execute(
                text("SELECT patient_id, status FROM audit_events WHERE request_id = :r"),
                {"r": r},
            ).all()
        )
        assert [r.status for r in rows] == [resp.status_code], (path, rows)
        if resp.status_code == 200:  # a refusal is recorded without reading the session
            assert rows[0].patient_id == clinic.pid, (path, rows)
