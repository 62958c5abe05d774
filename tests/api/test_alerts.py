"""Safety alerts opened by assessments (clinical-rules.md section 2), seen over HTTP."""

from __future__ import annotations

import uuid

import pytest

from kap_outcomes.auth.models import Role

PROBLEM = "application/problem+json"


def _phq9(item9, *, first=(1, 1, 1, 1, 1, 1, 1, 1)):
    return {
        "instrument": "phq9",
        "items": [*first, item9],
        "administered_at": "2026-03-02T15:04:05Z",
    }


def _cssrs(items):
    return {"instrument": "cssrs", "items": items, "administered_at": "2026-03-02T15:04:05Z"}


def _submit(tenant, pid, payload):
    resp = tenant.post(f"/v1/patients/{pid}/assessments", payload)
    assert resp.status_code == 201, resp.text
    return resp.json()


def _alerts(tenant, role=Role.clinician, **params):
    resp = tenant.get("/v1/alerts", role, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.mark.parametrize(
    ("item9", "level", "kind"),
    [(1, "review", "phq9_item9"), (2, "urgent", "phq9_item9"), (3, "urgent", "phq9_item9")],
)
def test_phq9_item9_opens_an_alert(tenant, count_rows, item9, level, kind):
    pid = tenant.patient()
    body = _submit(tenant, pid, _phq9(item9))
    assert [(a["level"], a["kind"], a["status"]) for a in body["alerts"]] == [(level, kind, "open")]
    assert "item9_negative" not in body["flags"]

    listed = _alerts(tenant)["data"]
    assert [a["id"] for a in listed] == [body["alerts"][0]["id"]]
    alert = listed[0]
    assert alert["patient_id"] == pid and alert["assessment_id"] == body["id"]
    assert alert["level"] == level and alert["kind"] == kind and alert["status"] == "open"
    assert alert["suggested_action"] == "administer the C-SSRS now"
    assert alert["reason"]
    assert alert["acknowledged_at"] is None and alert["resolved_at"] is None
    assert count_rows("alerts", tenant.org_id) == 1


def test_phq9_item9_missing_opens_a_review_alert(tenant):
    pid = tenant.patient()
    body = _submit(tenant, pid, _phq9(None))
    assert body["valid"] is True and body["prorated"] is True
    assert "item9_missing" in body["flags"]
    assert [(a["level"], a["kind"]) for a in body["alerts"]] == [("review", "safety_item_missing")]
    [alert] = _alerts(tenant, patient_id=pid)["data"]
    assert alert["kind"] == "safety_item_missing" and alert["suggested_action"] == "ask item 9"


def test_item9_missing_is_checked_even_on_an_invalid_form(tenant):
    pid = tenant.patient()
    body = _submit(tenant, pid, _phq9(None, first=(None, None, 1, 1, 1, 1, 1, 1)))
    assert body["valid"] is False and body["total"] is None
    assert [(a["level"], a["kind"]) for a in body["alerts"]] == [("review", "safety_item_missing")]


def test_item9_is_checked_even_on_an_invalid_form(tenant):
    pid = tenant.patient()
    body = _submit(tenant, pid, _phq9(3, first=(None, None, None, 0, 0, 0, 0, 0)))
    assert body["valid"] is False
    assert [(a["level"], a["kind"]) for a in body["alerts"]] == [("urgent", "phq9_item9")]


def test_phq9_item9_zero_opens_nothing_and_says_negative_not_safe(tenant, count_rows):
    pid = tenant.patient()
    body = _submit(tenant, pid, _phq9(0, first=(3, 3, 3, 3, 3, 3, 3, 3)))
    assert body["alerts"] == []
    assert "item9_negative" in body["flags"]
    assert body["severity"] == "severe"
    assert not any("no_risk" in f or "safe" in f for f in body["flags"])
    assert _alerts(tenant)["data"] == []
    assert count_rows("alerts", tenant.org_id) == 0


def test_gad7_never_opens_an_alert(tenant, count_rows):
    pid = tenant.patient()
    body = _submit(
        tenant,
        pid,
        {"instrument": "gad7", "items": [3] * 7, "administered_at": "2026-03-02T15:04:05Z"},
    )
    assert body["alerts"] == []
    assert count_rows("alerts", tenant.org_id) == 0


@pytest.mark.parametrize(
    ("items", "risk", "level"),
    [
        ([1, 0, None, None, None, 0, None], "low", "review"),
        ([1, 1, 1, 0, 0, 0, None], "moderate", "urgent"),
        ([0, 0, None, None, None, 1, 0], "moderate", "urgent"),
        ([1, 1, 0, 0, 1, 0, None], "high", "emergency"),
        ([0, 0, None, None, None, 1, 1], "high", "emergency"),
    ],
)
def test_cssrs_risk_levels_open_alerts(tenant, items, risk, level):
    pid = tenant.patient()
    body = _submit(tenant, pid, _cssrs(items))
    assert body["risk"] == risk
    assert [(a["level"], a["kind"]) for a in body["alerts"]] == [(level, "cssrs_risk")]
    assert [a["level"] for a in _alerts(tenant, patient_id=pid)["data"]] == [level]


def test_alerts_list_filters_by_status_and_patient(tenant):
    p1, p2, quiet = tenant.patient(), tenant.patient(), tenant.patient()
    a1 = _submit(tenant, p1, _phq9(1))["alerts"][0]["id"]
    a2 = _submit(tenant, p2, _phq9(2))["alerts"][0]["id"]
    _submit(tenant, quiet, _phq9(0))

    assert {a["id"] for a in _alerts(tenant)["data"]} == {a1, a2}
    assert {a["id"] for a in _alerts(tenant, status="open")["data"]} == {a1, a2}
    assert _alerts(tenant, status="acknowledged")["data"] == []
    assert _alerts(tenant, status="resolved")["data"] == []
    assert [a["id"] for a in _alerts(tenant, patient_id=p1)["data"]] == [a1]
    assert [a["id"] for a in _alerts(tenant, patient_id=p2, status="open")["data"]] == [a2]
    assert _alerts(tenant, patient_id=quiet)["data"] == []
    assert _alerts(tenant, patient_id=str(uuid.uuid4()))["data"] == []
    for role in (Role.admin, Role.integration):
        assert {a["id"] for a in _alerts(tenant, role)["data"]} == {a1, a2}


def test_alerts_list_pages_newest_first(tenant):
    pid = tenant.patient()
    opened = [_submit(tenant, pid, _phq9(1))["alerts"][0]["id"] for _ in range(3)]
    seen, cursor = [], None
    for _ in range(5):
        body = _alerts(tenant, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [a["id"] for a in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == opened[::-1]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"status": "closed"}, "status"),
        ({"limit": 0}, "limit"),
        ({"cursor": "zzz"}, "cursor"),
        ({"patient_id": "p" * 37}, "patient_id"),
        ({"patient_id": "a\u0000b"}, "patient_id"),  # was a 500 on PostgreSQL
    ],
)
def test_bad_alert_list_parameters_are_422(tenant, params, parameter):
    resp = tenant.get("/v1/alerts", params=params)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    assert parameter in [e.get("parameter") for e in resp.json()["errors"]]


def test_assessment_and_alert_are_stored_together(tenant, count_rows):
    pid = tenant.patient()
    body = _submit(tenant, pid, _phq9(2))
    assert count_rows("assessments", tenant.org_id) == 1
    assert count_rows("alerts", tenant.org_id) == 1
    # the alert is visible from the assessment, read back from storage
    stored = tenant.get(f"/v1/assessments/{body['id']}").json()
    assert stored["alerts"] == body["alerts"]
    listed = tenant.get(f"/v1/patients/{pid}/assessments").json()["data"]
    assert listed[0]["alerts"] == body["alerts"]
    [alert] = _alerts(tenant)["data"]
    assert alert["assessment_id"] == body["id"]


@pytest.mark.parametrize(
    "payload",
    [
        _phq9(2) | {"items": [1, 1, 1, 1, 1, 1, 1, 1, 2, 0]},  # 10 items
        _phq9(2) | {"items": [1, 1, 1, 1, 9, 1, 1, 1, 2]},  # out of range
        _phq9(2) | {"administered_at": "2026-03-02T15:04:05"},  # naive
        _phq9(2) | {"unexpected": True},
        _phq9(2) | {"course_id": str(uuid.uuid4())},  # 422
        _phq9(2) | {"session_id": str(uuid.uuid4())},  # 422
        _cssrs([1, 1, 1, 1, 1, 1, 2]),
    ],
    ids=["10-items", "range", "naive", "unknown-field", "course-404", "session-404", "cssrs-2"],
)
def test_rejected_assessment_leaves_no_alert(tenant, count_rows, payload):
    pid = tenant.patient()
    resp = tenant.post(f"/v1/patients/{pid}/assessments", payload)
    assert resp.status_code in (404, 422), resp.text
    assert count_rows("assessments", tenant.org_id) == 0
    assert count_rows("alerts", tenant.org_id) == 0
    assert _alerts(tenant)["data"] == []


def test_alerts_of_another_organisation_are_invisible(tenant, make_tenant):
    other = make_tenant()
    opid = other.patient()
    _submit(other, opid, _phq9(3))
    assert _alerts(tenant)["data"] == []
    assert _alerts(tenant, patient_id=opid)["data"] == []
    assert len(_alerts(other)["data"]) == 1
