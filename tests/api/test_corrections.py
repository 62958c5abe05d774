"""Corrections with history: ETag / If-Match, amend, retract, history, safety re-evaluated."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from kap_outcomes.auth.models import Role


def _at(days_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()


def _phq9(tenant, pid, items, days_ago=1.0):
    resp = tenant.post(
        f"/v1/patients/{pid}/assessments",
        {"instrument": "phq9", "items": items, "administered_at": _at(days_ago)},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def _amend(tenant, aid, body, etag=None, role=Role.clinician):
    headers = tenant.headers(role) | ({"If-Match": etag} if etag is not None else {})
    return tenant.client.post(f"/v1/assessments/{aid}/amend", json=body, headers=headers)


def _retract(tenant, aid, reason, etag):
    headers = tenant.headers() | {"If-Match": etag}
    return tenant.client.post(
        f"/v1/assessments/{aid}/retract", json={"reason": reason}, headers=headers
    )


def _history(tenant, aid):
    resp = tenant.get(f"/v1/assessments/{aid}/history")
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_get_carries_an_etag_of_the_version(tenant):
    pid = tenant.patient()
    created = _phq9(tenant, pid, [1] * 9)
    assert created["version"] == 1 and created["status"] == "final"
    got = tenant.get(f"/v1/assessments/{created['id']}")
    assert got.headers["ETag"] == '"1"'


def test_amend_needs_if_match_and_refuses_a_stale_one(tenant):
    pid = tenant.patient()
    aid = _phq9(tenant, pid, [1] * 9)["id"]
    body = {"items": [2] * 8 + [0], "reason": "transcription error"}
    missing = _amend(tenant, aid, body)
    assert missing.status_code == 428
    assert missing.headers["content-type"] == "application/problem+json"
    stale = _amend(tenant, aid, body, etag='"7"')
    assert stale.status_code == 412
    assert [v["version"] for v in _history(tenant, aid)["versions"]] == [1]
    assert tenant.get(f"/v1/assessments/{aid}").json()["total"] == 9


def test_if_match_star_is_refused_it_names_no_version(tenant):
    """`If-Match: *` would let a correction overwrite a version its author never read."""
    pid = tenant.patient()
    aid = _phq9(tenant, pid, [1] * 9)["id"]
    body = {"items": [2] * 8 + [0], "reason": "transcription error"}
    for star in ("*", " *", '"1", *'):
        amended = _amend(tenant, aid, body, etag=star)
        assert amended.status_code == 428, amended.text
        assert "ETag" in amended.json()["detail"]
        assert _retract(tenant, aid, "entered for the wrong patient", star).status_code == 428
    assert [v["version"] for v in _history(tenant, aid)["versions"]] == [1]
    assert tenant.get(f"/v1/assessments/{aid}").json()["status"] == "final"


def test_amend_records_a_new_version_and_keeps_the_old_one(tenant):
    pid = tenant.patient()
    aid = _phq9(tenant, pid, [1] * 8 + [0])["id"]
    etag = tenant.get(f"/v1/assessments/{aid}").headers["ETag"]
    resp = _amend(tenant, aid, {"items": [2] * 8 + [0], "reason": "clerk typed 1 for 2"}, etag)
    assert resp.status_code == 200, resp.text
    amended = resp.json()
    assert (amended["version"], amended["status"], amended["total"]) == (2, "amended", 16)
    assert amended["severity"] == "moderately_severe"
    assert resp.headers["ETag"] == '"2"'
    history = _history(tenant, aid)
    assert history["current_version"] == 2
    first, second = history["versions"]
    assert (first["version"], first["total"], first["reason"]) == (1, 8, None)
    assert (second["version"], second["total"], second["reason"]) == (2, 16, "clerk typed 1 for 2")
    assert first["recorded_by"] and second["recorded_by"]
    # the list shows the current version
    listed = tenant.get(f"/v1/patients/{pid}/assessments").json()["data"]
    assert [a["total"] for a in listed] == [16]


def test_amending_reevaluates_safety_and_never_closes_an_alert(tenant):
    pid = tenant.patient()
    created = _phq9(tenant, pid, [1] * 8 + [0])
    assert created["alerts"] == []
    aid = created["id"]
    up = _amend(tenant, aid, {"items": [1] * 8 + [2], "reason": "item 9 misread"}, '"1"')
    assert [(a["kind"], a["level"]) for a in up.json()["alerts"]] == [("phq9_item9", "urgent")]
    # the same trigger again opens nothing new; a correction back to 0 closes nothing
    again = _amend(tenant, aid, {"items": [2] * 8 + [2], "reason": "more corrections"}, '"2"')
    assert len(again.json()["alerts"]) == 1
    down = _amend(tenant, aid, {"items": [1] * 8 + [0], "reason": "item 9 was 0"}, '"3"')
    assert [a["status"] for a in down.json()["alerts"]] == ["open"]
    alerts = tenant.get(f"/v1/alerts?patient_id={pid}").json()["data"]
    assert [(a["level"], a["status"]) for a in alerts] == [("urgent", "open")]


def test_a_retracted_assessment_leaves_trends_and_signals(tenant):
    pid = tenant.patient()
    _phq9(tenant, pid, [2] * 9, days_ago=20)
    wrong = _phq9(tenant, pid, [0] * 9, days_ago=2)
    trend = tenant.get(f"/v1/patients/{pid}/trends?instrument=phq9").json()
    assert trend["latest"]["total"] == 0
    resp = _retract(tenant, wrong["id"], "recorded for the wrong patient", '"1"')
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "entered-in-error"
    trend = tenant.get(f"/v1/patients/{pid}/trends?instrument=phq9").json()
    assert trend["latest"]["total"] == 18
    assert [p["total"] for p in trend["points"]] == [18]
    signals = tenant.get(f"/v1/patients/{pid}/signals").json()
    assert signals["measurement"]["days_since_last_phq9"] >= 19
    # still readable, with its whole history
    history = _history(tenant, wrong["id"])
    assert [v["status"] for v in history["versions"]] == ["final", "entered-in-error"]


def test_a_retracted_assessment_cannot_be_amended_or_retracted_again(tenant):
    pid = tenant.patient()
    aid = _phq9(tenant, pid, [1] * 9)["id"]
    assert _retract(tenant, aid, "duplicate entry", '"1"').status_code == 200
    assert _amend(tenant, aid, {"items": [1] * 9, "reason": "x"}, '"2"').status_code == 409
    assert _retract(tenant, aid, "again", '"2"').status_code == 409


def test_bad_corrections_are_422_and_change_nothing(tenant):
    pid = tenant.patient()
    aid = _phq9(tenant, pid, [1] * 9)["id"]
    for body, pointer in [
        ({"items": [1] * 8, "reason": "x"}, "/items"),
        ({"items": [1] * 8 + [4], "reason": "x"}, "/items/8"),
        ({"items": [1] * 9}, "/reason"),
        ({"items": [1] * 9, "reason": ""}, "/reason"),
        ({"items": [1] * 9, "reason": "x", "total": 3}, "/total"),
        (
            {"items": [1] * 9, "reason": "x", "administered_at": "2026-01-01T00:00:00"},
            "/administered_at",
        ),
    ]:
        resp = _amend(tenant, aid, body, '"1"')
        assert resp.status_code == 422, (body, resp.text)
        assert pointer in [e["pointer"] for e in resp.json()["errors"]], (body, resp.text)
    assert _history(tenant, aid)["current_version"] == 1


def test_roles_and_tenancy(tenant, make_tenant):
    pid = tenant.patient()
    aid = _phq9(tenant, pid, [1] * 9)["id"]
    patient = tenant.client.post(
        f"/v1/assessments/{aid}/amend",
        json={"items": [0] * 9, "reason": "x"},
        headers=tenant.patient_token(pid) | {"If-Match": '"1"'},
    )
    assert patient.status_code == 403
    other = make_tenant()
    assert _amend(other, aid, {"items": [0] * 9, "reason": "x"}, '"1"').status_code == 404
    assert other.get(f"/v1/assessments/{aid}/history").status_code == 404
    # the patient may read its own history
    own = tenant.client.get(f"/v1/assessments/{aid}/history", headers=tenant.patient_token(pid))
    assert own.status_code == 200


def test_concurrent_corrections_of_one_version_one_wins(tenant):
    pid = tenant.patient()
    aid = _phq9(tenant, pid, [1] * 9)["id"]

    def amend(n: int):
        return _amend(tenant, aid, {"items": [n % 4] * 9, "reason": f"attempt {n}"}, '"1"')

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = sorted(r.status_code for r in pool.map(amend, range(6)))
    assert statuses.count(200) == 1
    assert set(statuses) <= {200, 412}
    assert [v["version"] for v in _history(tenant, aid)["versions"]] == [1, 2]
