"""References agree: what a body names must belong to the same organisation, the same patient
and (a session) the same course as the request, else a 422 pointing at the reference.

A path names the resource a request is about (unknown there: 404); a reference in a body is a
value of the request, and a value that names someone else's row is not a valid one.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from kap_outcomes.auth.models import Role

from ..conftest import Tenant

PHQ9 = {"instrument": "phq9", "items": [1] * 9, "administered_at": "2026-03-02T15:04:05Z"}


def _pointers(resp: Any) -> list[str]:
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    return [e["pointer"] for e in resp.json()["errors"]]


def _course(tenant: Tenant, pid: str) -> str:
    resp = tenant.post(f"/v1/patients/{pid}/courses", {"started_at": "2026-02-01T09:00:00Z"})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def _session(tenant: Tenant, pid: str, course_id: str | None = None) -> str:
    body: dict[str, Any] = {"kind": "intake", "occurred_at": "2026-02-02T09:00:00Z"}
    if course_id is not None:
        body["course_id"] = course_id
    resp = tenant.post(f"/v1/patients/{pid}/sessions", body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


@pytest.fixture
def two_patients(tenant: Tenant, make_tenant) -> dict[str, Any]:
    """Ours (two courses, a session in each), another patient of ours, another organisation's."""
    pid, sibling = tenant.patient(), tenant.patient()
    first = _course(tenant, pid)
    first_session = _session(tenant, pid, first)
    second = _course(tenant, pid)  # closes the first
    second_session = _session(tenant, pid, second)
    other = make_tenant()
    theirs = other.patient()
    return {
        "pid": pid,
        "courses": (first, second),
        "sessions": (first_session, second_session),
        "sibling_course": _course(tenant, sibling),
        "sibling_session": _session(tenant, sibling),
        "their_patient": theirs,
        "their_course": _course(other, theirs),
        "their_session": _session(other, theirs),
    }


def test_an_assessment_s_references_must_be_its_patient_s(tenant, two_patients, count_rows):
    w = two_patients
    _, second = w["courses"]
    first_session, _ = w["sessions"]
    path = f"/v1/patients/{w['pid']}/assessments"
    before = count_rows("assessments", tenant.org_id)
    cases = [
        ({"session_id": w["sibling_session"]}, ["/session_id"]),
        ({"session_id": w["their_session"]}, ["/session_id"]),
        ({"session_id": str(uuid.uuid4())}, ["/session_id"]),
        ({"course_id": w["sibling_course"]}, ["/course_id"]),
        ({"course_id": w["their_course"]}, ["/course_id"]),
        ({"course_id": str(uuid.uuid4())}, ["/course_id"]),
        # both of this patient, but the session belongs to the other course
        ({"session_id": first_session, "course_id": second}, ["/session_id"]),
    ]
    for refs, pointers in cases:
        assert _pointers(tenant.post(path, PHQ9 | refs)) == pointers, refs
    assert count_rows("assessments", tenant.org_id) == before
    assert count_rows("alerts", tenant.org_id) == 0


def test_references_that_agree_are_stored_as_sent(tenant, two_patients):
    w = two_patients
    first, second = w["courses"]
    first_session, _ = w["sessions"]
    path = f"/v1/patients/{w['pid']}/assessments"
    both = tenant.post(path, PHQ9 | {"session_id": first_session, "course_id": first}).json()
    assert (both["session_id"], both["course_id"]) == (first_session, first)
    by_session = tenant.post(path, PHQ9 | {"session_id": first_session}).json()
    assert by_session["course_id"] == first  # the session's course, not the active one
    plain = tenant.post(path, PHQ9).json()
    assert plain["course_id"] == second  # the active course


def test_a_session_s_course_must_be_its_patient_s(tenant, two_patients, count_rows):
    w = two_patients
    path = f"/v1/patients/{w['pid']}/sessions"
    before = count_rows("care_sessions", tenant.org_id)
    for course_id in (w["sibling_course"], w["their_course"], str(uuid.uuid4())):
        body = {"kind": "intake", "occurred_at": "2026-02-03T09:00:00Z", "course_id": course_id}
        assert _pointers(tenant.post(path, body)) == ["/course_id"], course_id
    assert count_rows("care_sessions", tenant.org_id) == before


def test_a_patient_token_must_name_a_patient_of_the_organisation(tenant, two_patients):
    w = two_patients
    for patient_id in (w["their_patient"], str(uuid.uuid4())):
        resp = tenant.post(
            "/v1/tokens", {"role": "patient", "patient_id": patient_id}, role=Role.admin
        )
        assert _pointers(resp) == ["/patient_id"]
