"""The organisation's policy over HTTP: defaults, versions, validation, preconditions."""

from __future__ import annotations

import pytest

from kap_outcomes.auth.models import Role
from kap_outcomes.clinical.policy import DEFAULT_POLICY, policy_to_dict

PROBLEM = "application/problem+json"


def _get(tenant):
    resp = tenant.get("/v1/policy", Role.admin)
    assert resp.status_code == 200, resp.text
    return resp


def _put(tenant, document, if_match):
    headers = tenant.headers(Role.admin)
    if if_match is not None:
        headers["If-Match"] = if_match
    return tenant.client.put("/v1/policy", json=document, headers=headers)


def test_defaults_are_version_0_until_an_admin_stores_one(tenant):
    resp = _get(tenant)
    body = resp.json()
    assert body["policy_version"] == "default" and body["version"] == 0
    assert body["document"] == policy_to_dict(DEFAULT_POLICY)
    assert body["created_at"] is None and body["created_by"] is None
    assert resp.headers["etag"] == '"default"'


def test_each_change_is_a_new_version_and_old_ones_are_kept(tenant, count_rows):
    first = _put(tenant, {"induction_doses": 4}, '"default"')
    assert first.status_code == 200, first.text
    assert first.json()["policy_version"] == "v1" and first.headers["etag"] == '"v1"'
    assert first.json()["document"]["induction_doses"] == 4

    second = _put(tenant, {"phq9": {"rise_from_nadir": 4}}, '"v1"')
    assert second.status_code == 200, second.text
    body = second.json()
    assert body["policy_version"] == "v2" and body["version"] == 2
    # A PUT replaces the whole policy: what it leaves out is the documented default.
    assert body["document"]["induction_doses"] == 6
    assert body["document"]["phq9"]["rise_from_nadir"] == 4
    assert body["document"]["phq9"]["mcid"] == 5
    assert body["created_by"] and body["created_at"]

    assert _get(tenant).json() == body
    assert count_rows("policy_versions", tenant.org_id) == 2


def test_versions_are_per_organisation(tenant, make_tenant):
    assert _put(tenant, {"induction_doses": 3}, '"default"').status_code == 200
    other = make_tenant()
    assert _get(other).json()["policy_version"] == "default"


@pytest.mark.parametrize(
    ("document", "pointer"),
    [
        ({"phq9": {"mcid": -1}}, "/phq9/mcid"),
        ({"gad7": {"caseness": 0}}, "/gad7/caseness"),
        ({"response_fraction": 1.5}, "/response_fraction"),
        ({"response_fraction": -0.1}, "/response_fraction"),
        ({"induction_doses": 0}, "/induction_doses"),
        ({"induction_doses": "6"}, "/induction_doses"),
        ({"induction_doses": True}, "/induction_doses"),
        ({"relapse_confirmation_min_days": -5}, "/relapse_confirmation_min_days"),
        ({"no_such_threshold": 1}, "/no_such_threshold"),
        ({"phq9": 5}, "/phq9"),
        ({"phq9": {"mcid": 28}}, "/phq9/mcid"),
    ],
)
def test_a_policy_that_makes_no_sense_is_a_422_with_pointers(tenant, count_rows, document, pointer):
    resp = _put(tenant, document, '"default"')
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == PROBLEM
    assert pointer in [e["pointer"] for e in resp.json()["errors"]]
    assert count_rows("policy_versions", tenant.org_id) == 0


def test_every_problem_is_reported_at_once(tenant):
    resp = _put(tenant, {"induction_doses": 0, "ewma_alpha": 2, "phq9": {"mcid": -3}}, "*")
    assert resp.status_code == 422
    pointers = {e["pointer"] for e in resp.json()["errors"]}
    assert {"/induction_doses", "/ewma_alpha", "/phq9/mcid"} <= pointers


def test_not_an_object_is_a_422(tenant):
    resp = _put(tenant, [1, 2], '"default"')
    assert resp.status_code == 422


def test_if_match_is_required_and_must_be_current(tenant, count_rows):
    assert _put(tenant, {"induction_doses": 4}, None).status_code == 428
    assert _put(tenant, {"induction_doses": 4}, '"default"').status_code == 200
    stale = _put(tenant, {"induction_doses": 5}, '"default"')
    assert stale.status_code == 412 and stale.headers["content-type"] == PROBLEM
    assert _put(tenant, {"induction_doses": 5}, 'W/"v1"').status_code == 200
    star = _put(tenant, {"induction_doses": 4}, "*")  # names no version: refused
    assert star.status_code == 428 and star.headers["content-type"] == PROBLEM
    assert count_rows("policy_versions", tenant.org_id) == 2


@pytest.mark.parametrize("role", [Role.clinician, Role.integration])
def test_only_admins_read_and_change_the_policy(tenant, role):
    assert tenant.get("/v1/policy", role).status_code == 403
    resp = tenant.client.put(
        "/v1/policy", json={}, headers=tenant.headers(role) | {"If-Match": "*"}
    )
    assert resp.status_code == 403


def test_a_new_course_takes_the_policys_induction_doses(tenant):
    assert _put(tenant, {"induction_doses": 3}, '"default"').status_code == 200
    pid = tenant.patient()
    implicit = tenant.post(f"/v1/patients/{pid}/courses", {})
    assert implicit.status_code == 201 and implicit.json()["induction_doses"] == 3
    explicit = tenant.post(f"/v1/patients/{pid}/courses", {"induction_doses": 6})
    assert explicit.status_code == 201 and explicit.json()["induction_doses"] == 6
