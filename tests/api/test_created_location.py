"""Every 201 names what it created in ``Location`` (RFC 9110 §10.2.2); a created assessment
also carries its ``ETag``, so a client can correct it without reading it first.

The test walks the app's own OpenAPI document: every operation that documents a 201 must be
called here, so a new creating route without a ``Location`` fails the suite.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from kap_outcomes.auth.models import Role

from ..conftest import Tenant
from ..fhir.forms import us_core_phq9, us_core_phq9_total

PHQ9 = {"instrument": "phq9", "items": [1, 1, 0, 0, 1, 0, 0, 0, 0]}


def _public_jwk() -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return RSAAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": "location-test"}


def _created(resp: Any) -> str:
    assert resp.status_code == 201, resp.text
    location = resp.headers.get("location")
    assert location, f"201 without Location: {resp.request.method} {resp.request.url}"
    return str(location)


def _creates(tenant: Tenant) -> dict[tuple[str, str], Any]:
    """One real call per creating operation (method, OpenAPI path) → its response."""
    pid = tenant.patient()
    calls: dict[tuple[str, str], Any] = {}
    calls[("post", "/v1/patients")] = tenant.post(
        "/v1/patients", {"external_id": f"loc-{uuid.uuid4()}"}
    )
    calls[("post", "/v1/patients/{patient_id}/courses")] = tenant.post(
        f"/v1/patients/{pid}/courses", {"label": "first"}
    )
    calls[("post", "/v1/patients/{patient_id}/sessions")] = tenant.post(
        f"/v1/patients/{pid}/sessions",
        {
            "kind": "dosing",
            "occurred_at": "2026-03-02T15:00:00Z",
            "dose": {"route": "im", "amount_mg": 50},
        },
    )
    calls[("post", "/v1/patients/{patient_id}/assessments")] = tenant.post(
        f"/v1/patients/{pid}/assessments", PHQ9 | {"administered_at": "2026-03-02T16:00:00Z"}
    )
    calls[("post", "/v1/tokens")] = tenant.post("/v1/tokens", {"role": "clinician"}, Role.admin)
    enrollment = tenant.post(f"/v1/patients/{pid}/enrollments", None)
    calls[("post", "/v1/patients/{patient_id}/enrollments")] = enrollment
    calls[("post", "/v1/auth/enroll")] = tenant.client.post(
        "/v1/auth/enroll", json={"code": enrollment.json()["code"]}
    )
    calls[("post", "/v1/clients")] = tenant.post(
        "/v1/clients",
        {"name": "ehr", "jwks": {"keys": [_public_jwk()]}, "scope": "system/*.rs"},
        Role.admin,
    )
    calls[("post", "/v1/webhooks")] = tenant.post(
        "/v1/webhooks",
        {"url": "http://127.0.0.1:9/location", "event_types": ["alert.opened"]},
        Role.admin,
    )
    calls[("post", "/fhir/R4/QuestionnaireResponse")] = tenant.client.post(
        "/fhir/R4/QuestionnaireResponse",
        json=us_core_phq9(pid, [0, 1, 0, 0, 1, 0, 0, 0, 0]),
        headers=tenant.headers() | {"Content-Type": "application/fhir+json"},
    )
    calls[("post", "/fhir/R4/Observation")] = tenant.client.post(
        "/fhir/R4/Observation",
        json=us_core_phq9_total({"reference": f"Patient/{pid}"}),
        headers=tenant.headers() | {"Content-Type": "application/fhir+json"},
    )
    calls[("post", "/fhir/R4/Group")] = tenant.client.post(
        "/fhir/R4/Group",
        json={
            "resourceType": "Group",
            "type": "person",
            "actual": True,
            "name": "location",
            "member": [{"entity": {"reference": f"Patient/{pid}"}}],
        },
        headers=tenant.headers() | {"Content-Type": "application/fhir+json"},
    )
    return calls


def test_every_201_carries_location(client, tenant):
    doc = client.get("/openapi.json").json()
    creating = sorted(
        (method, path)
        for path, operations in doc["paths"].items()
        for method, operation in operations.items()
        if "201" in operation.get("responses", {})
    )
    calls = _creates(tenant)
    assert creating == sorted(calls), "a creating operation is not exercised here"
    for resp in calls.values():
        _created(resp)


# who reads each Location back (the creator's role, or admin for admin-only resources), and
# the field of the 201 that holds the id the Location names
READ_BACK: dict[tuple[str, str], tuple[Role, str]] = {
    ("post", "/v1/patients"): (Role.clinician, "id"),
    ("post", "/v1/patients/{patient_id}/courses"): (Role.clinician, "id"),
    ("post", "/v1/patients/{patient_id}/sessions"): (Role.clinician, "id"),
    ("post", "/v1/patients/{patient_id}/assessments"): (Role.clinician, "id"),
    ("post", "/v1/tokens"): (Role.admin, "id"),
    ("post", "/v1/patients/{patient_id}/enrollments"): (Role.clinician, "id"),
    ("post", "/v1/auth/enroll"): (Role.admin, "token_id"),
    ("post", "/v1/clients"): (Role.admin, "client_id"),
    ("post", "/v1/webhooks"): (Role.admin, "id"),
}


def test_location_names_the_created_resource(tenant, make_tenant):
    calls = _creates(tenant)
    patient = calls[("post", "/v1/patients")]
    assert _created(patient) == f"/v1/patients/{patient.json()['id']}"
    course = calls[("post", "/v1/patients/{patient_id}/courses")].json()
    assert _created(calls[("post", "/v1/patients/{patient_id}/courses")]) == (
        f"/v1/patients/{course['patient_id']}/courses/{course['id']}"
    )
    session = calls[("post", "/v1/patients/{patient_id}/sessions")].json()
    assert _created(calls[("post", "/v1/patients/{patient_id}/sessions")]) == (
        f"/v1/patients/{session['patient_id']}/sessions/{session['id']}"
    )
    stranger = make_tenant()
    for key, (role, id_field) in READ_BACK.items():
        created = calls[key]
        location = _created(created)
        again = tenant.get(location, role)
        assert again.status_code == 200, (key, again.text)
        read = again.json()
        assert read.get("id", read.get("client_id")) == created.json()[id_field], key
        # another organisation cannot read it: the same 404 as for an id that never existed
        assert stranger.get(location, role).status_code == 404, key
    assert (
        "code"
        not in tenant.get(_created(calls[("post", "/v1/patients/{patient_id}/enrollments")])).json()
    )
    for kind in ("QuestionnaireResponse", "Observation"):
        made = calls[("post", f"/fhir/R4/{kind}")]
        # FHIR names the version created (…/_history/1); the resource is read without it
        resource_url, _, version = _created(made).rpartition("/_history/")
        assert version == "1"
        assert resource_url.endswith(f"/fhir/R4/{kind}/{made.json()['id']}")
        assert tenant.get(urlsplit(resource_url).path).json()["id"] == made.json()["id"]
    group = calls[("post", "/fhir/R4/Group")]
    resource_url, _, version = _created(group).rpartition("/_history/")
    assert version == "1"
    assert resource_url.endswith(f"/fhir/R4/Group/{group.json()['id']}")
    assert tenant.get(urlsplit(resource_url).path).json()["member"] == group.json()["member"]
    assert stranger.get(urlsplit(resource_url).path).status_code == 404


def test_a_created_assessment_carries_its_etag(tenant):
    """The ETag of the 201 is the one a read gives, and an amendment accepts it."""
    pid = tenant.patient()
    for key in (None, str(uuid.uuid4())):
        headers = {"Idempotency-Key": key} if key else {}
        created = tenant.client.post(
            f"/v1/patients/{pid}/assessments",
            json=PHQ9 | {"administered_at": "2026-03-03T16:00:00Z"},
            headers=tenant.headers() | headers,
        )
        etag = created.headers.get("etag")
        assert created.status_code == 201 and etag
        read = tenant.get(created.headers["location"])
        assert read.headers["etag"] == etag
        amended = tenant.client.post(
            f"/v1/assessments/{created.json()['id']}/amend",
            json={"items": [0] * 9, "reason": "typed the wrong row"},
            headers=tenant.headers() | {"If-Match": etag},
        )
        assert amended.status_code == 200, amended.text
        assert amended.headers["etag"] != etag


def test_a_replayed_create_carries_the_same_location(tenant):
    pid = tenant.patient()
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = PHQ9 | {"administered_at": "2026-03-04T16:00:00Z"}
    url = f"/v1/patients/{pid}/assessments"
    first = tenant.client.post(url, json=body, headers=tenant.headers() | key)
    again = tenant.client.post(url, json=body, headers=tenant.headers() | key)
    assert again.headers["idempotent-replayed"] == "true"
    assert _created(again) == _created(first)
    assert again.headers["etag"] == first.headers["etag"]
