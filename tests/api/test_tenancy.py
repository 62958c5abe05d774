"""Tenant isolation, authentication and the patient role."""

from __future__ import annotations

import secrets
import string
import uuid

import pytest

from kap_outcomes.auth.models import Role

PROBLEM = "application/problem+json"
STAFF = [Role.admin, Role.clinician, Role.integration]

PHQ9 = {
    "instrument": "phq9",
    "items": [1, 2, 1, 0, 1, 2, 1, 0, 0],
    "administered_at": "2026-03-02T15:04:05Z",
}
DOSING = {
    "kind": "dosing",
    "occurred_at": "2026-03-01T15:00:00Z",
    "dose": {"route": "im", "amount_mg": 50},
}


def _assert_404(resp) -> None:
    assert resp.status_code == 404, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body = resp.json()
    assert body["status"] == 404
    # the same answer as for an id that never existed: nothing leaks
    assert body["detail"] in {"Patient not found", "Assessment not found", "No such resource."}


@pytest.fixture
def victim(make_tenant):
    """A first organisation with a patient that has a course, a session and an assessment."""
    org = make_tenant()
    pid = org.patient()
    course = org.post(f"/v1/patients/{pid}/courses", {}).json()
    session = org.post(f"/v1/patients/{pid}/sessions", DOSING).json()
    assessment = org.post(f"/v1/patients/{pid}/assessments", PHQ9 | {"items": [1] * 9}).json()
    return {
        "org": org,
        "pid": pid,
        "course_id": course["id"],
        "session_id": session["id"],
        "assessment_id": assessment["id"],
    }


def _counts(count_rows, org_id):
    return {
        t: count_rows(t, org_id)
        for t in ("patients", "courses", "care_sessions", "assessments", "alerts")
    }


@pytest.mark.parametrize("role", STAFF)
def test_another_organisation_gets_404_never_403(tenant, victim, count_rows, role):
    pid, aid = victim["pid"], victim["assessment_id"]
    before_victim = _counts(count_rows, victim["org"].org_id)
    before_mine = _counts(count_rows, tenant.org_id)

    _assert_404(tenant.get(f"/v1/patients/{pid}", role))
    _assert_404(tenant.get(f"/v1/patients/{pid}/assessments", role))
    _assert_404(tenant.get(f"/v1/patients/{pid}/courses", role))
    _assert_404(tenant.get(f"/v1/patients/{pid}/sessions", role))
    _assert_404(tenant.get(f"/v1/assessments/{aid}", role))
    _assert_404(tenant.post(f"/v1/patients/{pid}/assessments", PHQ9, role))
    _assert_404(tenant.post(f"/v1/patients/{pid}/sessions", DOSING, role))
    _assert_404(tenant.post(f"/v1/patients/{pid}/courses", {}, role))

    assert _counts(count_rows, victim["org"].org_id) == before_victim
    assert _counts(count_rows, tenant.org_id) == before_mine


def test_foreign_404_looks_like_unknown_404(tenant, victim):
    foreign = tenant.get(f"/v1/patients/{victim['pid']}")
    unknown = tenant.get(f"/v1/patients/{uuid.uuid4()}")
    assert foreign.status_code == unknown.status_code == 404
    strip = {"instance"}
    assert {k: v for k, v in foreign.json().items() if k not in strip} == {
        k: v for k, v in unknown.json().items() if k not in strip
    }


def test_cannot_reach_another_organisations_course_or_session_by_id(tenant, count_rows, victim):
    mine = tenant.patient()
    # a reference in a body: 422, the same answer as for an id that exists nowhere
    for payload in (DOSING | {"course_id": victim["course_id"]},):
        resp = tenant.post(f"/v1/patients/{mine}/sessions", payload)
        unknown = tenant.post(f"/v1/patients/{mine}/sessions", DOSING | {"course_id": mine})
        assert resp.status_code == 422, resp.text
        assert resp.json()["errors"] == unknown.json()["errors"]
    for field in ("course_id", "session_id"):
        resp = tenant.post(f"/v1/patients/{mine}/assessments", PHQ9 | {field: victim[field]})
        unknown = tenant.post(f"/v1/patients/{mine}/assessments", PHQ9 | {field: mine})
        assert resp.status_code == 422, resp.text
        assert resp.json()["errors"] == unknown.json()["errors"]
    assert count_rows("care_sessions", tenant.org_id) == 0
    assert count_rows("assessments", tenant.org_id) == 0


def test_lists_never_contain_another_organisations_rows(tenant, victim):
    victim_org = victim["org"]
    ext = f"shared-{uuid.uuid4()}"
    victim_org.patient(ext)
    mine = tenant.patient(ext)  # the same external_id, in my organisation
    tenant.post(f"/v1/patients/{mine}/assessments", PHQ9 | {"items": [0] * 8 + [2]})

    patients = tenant.get("/v1/patients", params={"limit": 500}).json()
    assert [p["id"] for p in patients["data"]] == [mine]
    by_ext = tenant.get("/v1/patients", params={"external_id": ext}).json()
    assert [p["id"] for p in by_ext["data"]] == [mine]

    alerts = tenant.get("/v1/alerts").json()["data"]
    assert alerts and all(a["patient_id"] == mine for a in alerts)
    assert tenant.get("/v1/alerts", params={"patient_id": victim["pid"]}).json()["data"] == []

    # and the other way round
    theirs = victim_org.get("/v1/patients", params={"limit": 500}).json()["data"]
    assert mine not in {p["id"] for p in theirs}
    assert all(a["patient_id"] != mine for a in victim_org.get("/v1/alerts").json()["data"])


def test_foreign_cursor_does_not_leak_rows(tenant, victim):
    """A cursor taken from one organisation's list only ever pages within the caller's own."""
    victim_org = victim["org"]
    victim_org.patient()
    page = victim_org.get("/v1/patients", params={"limit": 1}).json()
    assert page["next_cursor"]
    mine = tenant.patient()
    resp = tenant.get("/v1/patients", params={"limit": 500, "cursor": page["next_cursor"]})
    assert resp.status_code == 200, resp.text
    assert {p["id"] for p in resp.json()["data"]} <= {mine}


# --- authentication ----------------------------------------------------------------------


def _fake_token() -> str:
    alphabet = string.ascii_letters + string.digits + "-_"
    return "kap_" + "".join(secrets.choice(alphabet) for _ in range(43))


BAD_AUTH = {
    "none": None,
    "empty-bearer": "Bearer ",
    "basic-scheme": "Basic dXNlcjpwYXNz",
    "no-scheme": "kap_" + "a" * 43,
    "malformed": "Bearer not-a-token",
    "too-short": "Bearer kap_" + "a" * 42,
    "too-long": "Bearer kap_" + "a" * 44,
    "wrong-prefix": "Bearer pak_" + "a" * 43,
    "unknown": "Bearer " + _fake_token(),
}

PROTECTED = [
    ("get", "/v1/patients"),
    ("post", "/v1/patients"),
    ("get", f"/v1/patients/{uuid.uuid4()}"),
    ("get", f"/v1/patients/{uuid.uuid4()}/assessments"),
    ("post", f"/v1/patients/{uuid.uuid4()}/assessments"),
    ("get", f"/v1/assessments/{uuid.uuid4()}"),
    ("get", "/v1/alerts"),
]


@pytest.mark.parametrize("auth", list(BAD_AUTH.values()), ids=list(BAD_AUTH))
@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_missing_or_bad_token_is_401(client, method, path, auth):
    headers = {} if auth is None else {"Authorization": auth}
    kwargs = {"json": PHQ9} if method == "post" else {}
    resp = client.request(method.upper(), path, headers=headers, **kwargs)
    assert resp.status_code == 401, resp.text
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert resp.headers["content-type"].startswith(PROBLEM)
    assert resp.json()["status"] == 401


def test_a_real_token_of_another_org_with_one_character_changed_is_401(tenant):
    token = tenant.tokens[Role.clinician]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    resp = tenant.client.get("/v1/patients", headers={"Authorization": f"Bearer {flipped}"})
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")


def test_401_does_not_store_anything(tenant, count_rows):
    resp = tenant.client.post(
        "/v1/patients",
        json={"external_id": "x1"},
        headers={"Authorization": "Bearer " + _fake_token()},
    )
    assert resp.status_code == 401
    assert count_rows("patients", tenant.org_id) == 0


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_endpoints_need_no_token(client, path):
    resp = client.get(path)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] in {"ok", "ready"}


# --- the patient role --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/v1/patients"),
        ("get", "/v1/alerts"),
        ("post", "/v1/patients"),
    ],
)
def test_patient_token_is_403_on_staff_endpoints(tenant, count_rows, method, path):
    pid = tenant.patient()
    kwargs = {"json": {"external_id": "by-patient"}} if method == "post" else {}
    resp = tenant.client.request(method.upper(), path, headers=tenant.patient_token(pid), **kwargs)
    assert resp.status_code == 403, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    assert resp.json()["status"] == 403
    assert count_rows("patients", tenant.org_id) == 1


def test_patient_token_reads_its_own_patient(tenant):
    pid = tenant.patient()
    resp = tenant.client.get(f"/v1/patients/{pid}", headers=tenant.patient_token(pid))
    assert resp.status_code == 200, resp.text
    assert resp.json()["id"] == pid


def test_patient_token_of_another_org_is_404(tenant, victim):
    mine = tenant.patient()
    headers = tenant.patient_token(mine)
    for path in (
        f"/v1/patients/{victim['pid']}",
        f"/v1/patients/{victim['pid']}/assessments",
        f"/v1/assessments/{victim['assessment_id']}",
    ):
        _assert_404(tenant.client.get(path, headers=headers))
