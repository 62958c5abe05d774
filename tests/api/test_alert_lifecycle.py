"""Alert lifecycle over HTTP: open → acknowledged → resolved, recorded, never deleted."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from kap_outcomes.auth.models import Role
from kap_outcomes.auth.tokens import hash_token

PROBLEM = "application/problem+json"


def _open_alert(tenant) -> tuple[str, str]:
    pid = tenant.patient()
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    body = {"instrument": "phq9", "items": [1, 1, 1, 1, 1, 1, 1, 1, 2], "administered_at": at}
    resp = tenant.post(f"/v1/patients/{pid}/assessments", body)
    assert resp.status_code == 201, resp.text
    [alert] = resp.json()["alerts"]
    return pid, alert["id"]


def _token_id(tenant, role: Role) -> str:
    digest = hash_token(tenant.tokens[role])
    return str(
        tenant.db.run_read(
            lambda conn: conn.execute(
                text("SELECT id FROM api_tokens WHERE token_hash = :h"), {"h": digest}
            ).scalar_one()
        )
    )


def test_acknowledge_then_resolve_records_who_when_and_note(tenant, count_rows):
    _, alert_id = _open_alert(tenant)
    before = datetime.now(UTC) - timedelta(seconds=1)

    ack = tenant.post(f"/v1/alerts/{alert_id}/acknowledge", {"note": "called the patient"})
    assert ack.status_code == 200, ack.text
    body = ack.json()
    assert body["status"] == "acknowledged"
    assert body["acknowledged_by"] == _token_id(tenant, Role.clinician)
    assert body["acknowledged_note"] == "called the patient"
    assert datetime.fromisoformat(body["acknowledged_at"]) >= before
    assert body["resolved_at"] is None

    res = tenant.post(f"/v1/alerts/{alert_id}/resolve", {"note": "safety plan"}, Role.admin)
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["status"] == "resolved"
    assert body["acknowledged_by"] == _token_id(tenant, Role.clinician)
    assert body["acknowledged_note"] == "called the patient"
    assert body["resolved_by"] == _token_id(tenant, Role.admin)
    assert body["resolved_note"] == "safety plan"
    assert body["resolved_at"] >= body["acknowledged_at"]

    # What was recorded is what the list shows, and the alert is still there.
    [listed] = tenant.get("/v1/alerts", params={"status": "resolved"}).json()["data"]
    assert listed == body
    assert tenant.get("/v1/alerts", params={"status": "open"}).json()["data"] == []
    assert count_rows("alerts", tenant.org_id) == 1


def test_resolve_an_open_alert_acknowledges_it_at_once(tenant):
    _, alert_id = _open_alert(tenant)
    resp = tenant.post(f"/v1/alerts/{alert_id}/resolve", None, Role.integration)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    token_id = _token_id(tenant, Role.integration)
    assert body["status"] == "resolved"
    assert body["acknowledged_by"] == body["resolved_by"] == token_id
    assert body["acknowledged_at"] == body["resolved_at"]
    assert body["acknowledged_note"] is None and body["resolved_note"] is None


def test_no_body_and_an_empty_body_are_both_accepted(tenant):
    _, first = _open_alert(tenant)
    _, second = _open_alert(tenant)
    assert tenant.post(f"/v1/alerts/{first}/acknowledge", None).status_code == 200
    assert tenant.post(f"/v1/alerts/{second}/acknowledge", {}).status_code == 200


@pytest.mark.parametrize(
    ("steps", "then", "status"),
    [
        (["acknowledge"], "acknowledge", 409),
        (["resolve"], "acknowledge", 409),
        (["resolve"], "resolve", 409),
        (["acknowledge", "resolve"], "resolve", 409),
    ],
)
def test_a_recorded_step_is_never_overwritten(tenant, steps, then, status):
    _, alert_id = _open_alert(tenant)
    for step in steps:
        assert tenant.post(f"/v1/alerts/{alert_id}/{step}", {"note": "first"}).status_code == 200
    recorded = tenant.get("/v1/alerts").json()["data"][0]
    resp = tenant.post(f"/v1/alerts/{alert_id}/{then}", {"note": "second"})
    assert resp.status_code == status
    assert resp.headers["content-type"] == PROBLEM
    assert tenant.get("/v1/alerts").json()["data"][0] == recorded


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"note": "x" * 2001}, "/note"),
        ({"note": 5}, "/note"),
        ({"note": "ok", "status": "resolved"}, "/status"),
        ({"note": "nul \u0000"}, "/note"),
    ],
)
def test_bad_bodies_are_422_and_change_nothing(tenant, body, pointer):
    _, alert_id = _open_alert(tenant)
    resp = tenant.post(f"/v1/alerts/{alert_id}/acknowledge", body)
    assert resp.status_code == 422
    assert pointer in [e.get("pointer") for e in resp.json()["errors"]]
    assert tenant.get("/v1/alerts").json()["data"][0]["status"] == "open"


def test_a_note_of_2000_characters_is_kept_whole(tenant):
    _, alert_id = _open_alert(tenant)
    resp = tenant.post(f"/v1/alerts/{alert_id}/acknowledge", {"note": "é" * 2000})
    assert resp.status_code == 200 and resp.json()["acknowledged_note"] == "é" * 2000


def test_unknown_and_other_organisations_alerts_are_404(tenant, make_tenant):
    other = make_tenant()
    _, alert_id = _open_alert(other)
    for action in ("acknowledge", "resolve"):
        for target in (alert_id, str(uuid.uuid4())):
            resp = tenant.post(f"/v1/alerts/{target}/{action}", {})
            assert resp.status_code == 404 and resp.headers["content-type"] == PROBLEM
    assert other.get("/v1/alerts").json()["data"][0]["status"] == "open"


def test_patients_may_not_acknowledge(tenant):
    pid, alert_id = _open_alert(tenant)
    resp = tenant.client.post(
        f"/v1/alerts/{alert_id}/acknowledge", json={}, headers=tenant.patient_token(pid)
    )
    assert resp.status_code == 403


def test_no_token_is_401(tenant):
    _, alert_id = _open_alert(tenant)
    resp = tenant.client.post(f"/v1/alerts/{alert_id}/resolve", json={})
    assert resp.status_code == 401 and "Bearer" in resp.headers["www-authenticate"]
