"""The event log: every write records its events in its own transaction (issue #11, 1)."""

from __future__ import annotations

from typing import Any

from kap_outcomes.auth.models import Role

from .served import settled

PHQ9_ITEM9 = {
    "instrument": "phq9",
    "items": [1, 1, 1, 1, 1, 1, 1, 1, 2],
    "administered_at": "2026-03-02T15:04:05Z",
}


def _events(tenant, role: Role = Role.clinician, **params: Any) -> list[dict[str, Any]]:
    resp = tenant.get("/v1/events", role=role, params={"limit": 500, **params})
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def test_every_write_records_its_event(tenant):
    external_id = "ehr-7f3a-secret-mrn"
    pid = tenant.patient(external_id)
    course = tenant.post(f"/v1/patients/{pid}/courses", {}).json()
    session = tenant.post(
        f"/v1/patients/{pid}/sessions",
        {
            "kind": "dosing",
            "occurred_at": "2026-03-01T15:00:00Z",
            "dose": {"route": "im", "amount_mg": 50},
        },
    ).json()
    created = tenant.post(f"/v1/patients/{pid}/assessments", PHQ9_ITEM9).json()
    alert_id = created["alerts"][0]["id"]
    etag = tenant.get(f"/v1/assessments/{created['id']}").headers["etag"]
    amended = tenant.client.post(
        f"/v1/assessments/{created['id']}/amend",
        json={"items": [1, 1, 1, 1, 1, 1, 1, 1, 3], "reason": "typo"},
        headers=tenant.headers() | {"If-Match": etag},
    )
    assert amended.status_code == 200, amended.text
    assert tenant.post(f"/v1/alerts/{alert_id}/acknowledge", {}).status_code == 200
    assert tenant.post(f"/v1/alerts/{alert_id}/resolve", {}).status_code == 200
    retracted = tenant.client.post(
        f"/v1/assessments/{created['id']}/retract",
        json={"reason": "wrong patient"},
        headers=tenant.headers() | {"If-Match": amended.headers["etag"]},
    )
    assert retracted.status_code == 200, retracted.text

    settled(tenant)
    events = _events(tenant)
    assert [(e["type"], e["resource"]["type"], e["resource"]["id"]) for e in events] == [
        ("patient.created", "patient", pid),
        ("course.opened", "course", course["id"]),
        ("session.recorded", "session", session["id"]),
        ("assessment.submitted", "assessment", created["id"]),
        ("alert.opened", "alert", alert_id),
        ("assessment.amended", "assessment", created["id"]),
        # amended to item 9 = 3: a further trigger of the rules, if any, opens its own alert
        *[
            ("alert.opened", "alert", a["id"])
            for a in tenant.get(f"/v1/alerts?patient_id={pid}").json()["data"]
            if a["id"] != alert_id
        ],
        ("alert.acknowledged", "alert", alert_id),
        ("alert.resolved", "alert", alert_id),
        ("assessment.retracted", "assessment", created["id"]),
    ]
    for event in events:
        assert event["patient_id"] == pid
        assert event["organisation_id"] == tenant.org_id
        assert event["occurred_at"].endswith("Z") or "+" in event["occurred_at"]
    millis = [e["id"][:13] for e in events]  # UUIDv7: 48 bits of Unix milliseconds first
    assert millis == sorted(millis), "ids are time-ordered"
    submitted = events[3]
    assert submitted["data"]["instrument"] == "phq9"
    assert submitted["data"]["severity"] == "moderate"  # total 10: 10-14 (Kroenke 2001)
    opened = events[4]
    assert opened["data"]["assessment_id"] == created["id"]
    assert opened["data"]["level"] == created["alerts"][0]["level"]
    # never item answers, never the external id
    feed = tenant.get("/v1/events", params={"limit": 500}).text
    assert external_id not in feed
    assert '"items"' not in feed


def test_a_refused_write_records_no_event(tenant):
    pid = tenant.patient("dup-1")
    settled(tenant)
    before = _events(tenant)
    assert tenant.post("/v1/patients", {"external_id": "dup-1"}).status_code == 409
    bad = tenant.post(
        f"/v1/patients/{pid}/sessions",
        {"kind": "intake", "occurred_at": "2026-03-01T15:00:00Z", "course_id": "no-such-course"},
    )
    assert bad.status_code == 422  # a course that is not the patient's
    settled(tenant)
    assert _events(tenant) == before


def test_the_caseload_listens_to_events(tenant):
    """Not a call from each service: the caseload marks its summary stale from the events."""
    pid = tenant.patient()
    assert tenant.get("/v1/caseload").json()["data"][0]["phq9"] is None
    tenant.post(f"/v1/patients/{pid}/assessments", PHQ9_ITEM9)
    row = tenant.get("/v1/caseload").json()["data"][0]
    assert row["phq9"]["total"] == 10
    assert row["alert_level"] != "none"
