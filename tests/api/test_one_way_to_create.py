"""Every create reads the caller, the Idempotency-Key and the body one way (kap_outcomes.creating):
the same bad key or the same bad body gives the same error items on every creating route, /v1
and FHIR alike (FHIR as OperationOutcome issues), and ``app.dependency_overrides`` reaches the
ingest route as it reaches any other."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from kap_outcomes.auth.dependencies import current_principal
from kap_outcomes.auth.models import Role
from kap_outcomes.auth.principal import Principal

PHQ9 = {
    "instrument": "phq9",
    "items": [1, 2, 1, 0, 1, 2, 1, 0, 1],
    "administered_at": "2026-03-02T15:04:05Z",
}
BAD_KEY = "with space"
JSON = {"Content-Type": "application/json"}


def _creating_paths(patient_id: str) -> list[str]:
    return [
        f"/v1/patients/{patient_id}/assessments",  # the ingest route
        "/v1/patients",
        f"/v1/patients/{patient_id}/courses",
        f"/v1/patients/{patient_id}/sessions",
        "/v1/clients",
        "/fhir/R4/QuestionnaireResponse",
        "/fhir/R4/Observation",
        "/fhir/R4",  # a transaction Bundle
        "/fhir/R4/Group",
    ]


def _items(resp: Any) -> list[tuple[str, str]]:
    """(what, where) of each error: a problem's detail and pointer or parameter on /v1, an
    issue's diagnostics and expression on FHIR (a pointer ``/a/0`` is the path ``a.0``)."""
    body = resp.json()
    if body.get("resourceType") == "OperationOutcome":
        return [(i["diagnostics"], (i.get("expression") or [""])[0]) for i in body["issue"]]
    return [
        (e["detail"], e.get("parameter") or e.get("pointer", "").lstrip("/").replace("/", "."))
        for e in body["errors"]
    ]


def _post(tenant: Any, path: str, content: bytes, **headers: str) -> Any:
    return tenant.client.post(
        path, content=content, headers=tenant.headers(Role.admin) | JSON | headers
    )


@pytest.mark.parametrize(
    ("case", "content", "key"),
    [
        ("bad key, malformed body", b"{nope", BAD_KEY),
        ("malformed body", b"{nope", None),
        ("no object", b"[1, 2]", None),
        ("empty body", b"", None),
        ("bad key, empty body", b"", "x" * 256),
    ],
)
def test_the_same_bad_request_gets_the_same_errors_on_every_create(
    tenant: Any, case: str, content: bytes, key: str | None
) -> None:
    patient_id = tenant.patient()
    extra = {"Idempotency-Key": key} if key is not None else {}
    answers = {path: _post(tenant, path, content, **extra) for path in _creating_paths(patient_id)}
    for path, resp in answers.items():
        fhir = path.startswith("/fhir/")
        assert resp.status_code == (400 if fhir else 422), (case, path, resp.text)
        expected = "application/fhir+json" if fhir else "application/problem+json"
        assert resp.headers["content-type"].startswith(expected), (case, path)
    lists = {path: _items(resp) for path, resp in answers.items()}
    first = lists[f"/v1/patients/{patient_id}/assessments"]
    assert all(items == first for items in lists.values()), (case, lists)
    # and the list says what is wrong, where: the key by name, the body at its root
    wheres = [where for _, where in first]
    assert wheres == (["Idempotency-Key", ""] if key is not None else [""]), first


def test_a_bad_key_with_a_good_body_is_that_one_error_and_stores_nothing(
    tenant: Any, count_rows: Any
) -> None:
    patient_id = tenant.patient()
    bodies = {
        f"/v1/patients/{patient_id}/assessments": PHQ9,
        "/v1/patients": {"external_id": f"ext-{uuid.uuid4()}"},
        f"/v1/patients/{patient_id}/courses": {"induction_doses": 6},
        "/fhir/R4/Observation": {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
            "subject": {"reference": f"Patient/{patient_id}"},
            "effectiveDateTime": "2026-03-02T15:04:05Z",
            "valueInteger": 7,
        },
    }
    answers = [
        tenant.client.post(
            path, json=body, headers=tenant.headers() | {"Idempotency-Key": "clé".encode()}
        )
        for path, body in bodies.items()
    ]
    assert [r.status_code for r in answers] == [422, 422, 422, 400]
    assert len({tuple(_items(r)) for r in answers}) == 1
    assert [where for _, where in _items(answers[0])] == ["Idempotency-Key"]
    assert count_rows("assessments", tenant.org_id) == 0
    assert count_rows("courses", tenant.org_id) == 0
    assert count_rows("patients", tenant.org_id) == 1  # the one made above


def test_a_fhir_create_replays_under_its_key_like_a_v1_create(tenant: Any, count_rows: Any) -> None:
    patient_id = tenant.patient()
    group = {
        "resourceType": "Group",
        "type": "person",
        "actual": True,
        "name": "cohort",
        "member": [{"entity": {"reference": f"Patient/{patient_id}"}}],
    }
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = tenant.client.post("/fhir/R4/Group", json=group, headers=tenant.headers() | key)
    again = tenant.client.post("/fhir/R4/Group", json=group, headers=tenant.headers() | key)
    assert (first.status_code, again.status_code) == (201, 201), first.text
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count_rows("patient_groups", tenant.org_id) == 1
    other = tenant.client.post(
        "/fhir/R4/Group", json=group | {"name": "another"}, headers=tenant.headers() | key
    )
    assert other.status_code == 422
    assert other.json()["resourceType"] == "OperationOutcome"


def test_dependency_overrides_reach_the_ingest_route(tenant: Any, db: Any) -> None:
    """A test (or a deployment) that replaces how callers are authenticated replaces it on the
    busiest route too: no Authorization header at all, and the override's caller records."""
    integration_id = db.run_read(
        lambda conn: conn.execute(
            text("SELECT id FROM api_tokens WHERE organisation_id = :o AND role = 'integration'"),
            {"o": tenant.org_id},
        ).scalar_one()
    )
    caller = Principal(
        token_id=integration_id,
        organisation_id=tenant.org_id,
        role=Role.integration,
        patient_id=None,
    )
    calls: list[str] = []

    async def overridden() -> Principal:
        calls.append("called")
        return caller

    patient_id = tenant.patient()
    path = f"/v1/patients/{patient_id}/assessments"
    assert tenant.client.post(path, json=PHQ9).status_code == 401  # not overridden: no token
    overrides = tenant.client.app.dependency_overrides
    overrides[current_principal] = overridden
    try:
        resp = tenant.client.post(path, json=PHQ9)
    finally:
        overrides.pop(current_principal)
    assert resp.status_code == 201, resp.text
    assert calls == ["called"]
    history = tenant.get(f"/v1/assessments/{resp.json()['id']}/history").json()
    assert history["versions"][0]["recorded_by"] == integration_id
    assert tenant.client.post(path, json=PHQ9).status_code == 401  # and gone again


@pytest.mark.parametrize(
    ("case", "content"),
    [("malformed body", b"{nope"), ("no object", b"[1, 2]"), ("empty body", b"")],
)
def test_the_caller_less_create_reads_its_body_like_every_other(
    tenant: Any, case: str, content: bytes
) -> None:
    """``POST /v1/auth/enroll`` (a patient's app with an enrollment code, no token) goes
    through the same Create: the same bad body gives the same error items as the ingest
    route's. It takes no Idempotency-Key (its answer holds a token shown once, as
    ``POST /v1/tokens``), so a bad one is not among its problems."""
    ingest = _post(tenant, f"/v1/patients/{tenant.patient()}/assessments", content)
    enroll = tenant.client.post(
        "/v1/auth/enroll", content=content, headers=JSON | {"Idempotency-Key": BAD_KEY}
    )
    assert (ingest.status_code, enroll.status_code) == (422, 422), (case, enroll.text)
    assert enroll.headers["content-type"].startswith("application/problem+json")
    assert _items(enroll) == _items(ingest), case
    bad_field = tenant.client.post("/v1/auth/enroll", json={"code": "", "extra": 1})
    assert bad_field.status_code == 422
    assert sorted(where for _, where in _items(bad_field)) == ["code", "extra"]


def test_the_caller_less_create_answers_and_audits_as_a_create(
    tenant: Any, count_rows: Any
) -> None:
    """201 with the new token's Location; a used code is a 400 and creates nothing more; the
    enrollment is audited as the token it issued."""
    patient_id = tenant.patient()
    issued = tenant.client.post(
        f"/v1/patients/{patient_id}/enrollments", headers=tenant.headers(Role.clinician)
    )
    code = issued.json()["code"]
    enrolled = tenant.client.post(
        "/v1/auth/enroll", json={"code": code}, headers={"X-Request-ID": "enroll-once"}
    )
    assert enrolled.status_code == 201, enrolled.text
    token_id = enrolled.json()["token_id"]
    assert enrolled.headers["Location"] == f"/v1/tokens/{token_id}"
    tokens = count_rows("api_tokens", tenant.org_id)
    again = tenant.client.post("/v1/auth/enroll", json={"code": code})
    assert again.status_code == 400
    assert count_rows("api_tokens", tenant.org_id) == tokens
    audited = tenant.client.get(
        "/v1/audit-events", params={"actor": token_id}, headers=tenant.headers(Role.admin)
    ).json()["data"]
    write = next(e for e in audited if e["request_id"] == "enroll-once")
    assert (write["action"], write["status"], write["role"], write["patient_id"]) == (
        "POST /v1/auth/enroll",
        201,
        "patient",
        patient_id,
    )
