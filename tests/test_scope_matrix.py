"""The scope matrix: every operation of the app, for every SMART scope set.

``NEEDS`` below is this test's own statement of what a SMART access token needs on each
route, written from docs/fhir-smart.md ("Scopes, route by route") and SMART App Launch 2.0
(``c`` create, ``r`` read, ``u`` update, ``d`` delete, ``s`` search; v1 ``read`` = ``rs``,
``write`` = ``cud``, ``*`` = ``cruds``). It is not read from the code's table: the code
(``smart.access``) and this test must agree. The operations come from the app's own OpenAPI
document, so a new route without a scope decision here fails the suite.

For each (operation, scope set) the call must either get past authorisation (any status
but 401, 403 and 404, as in tests/test_access_matrix.py) or be a 403 ``insufficient_scope``
(problem+json on /v1, an OperationOutcome on /fhir, and ``WWW-Authenticate`` saying so).
"""

from __future__ import annotations

from typing import Any

import pytest

from kap_outcomes.auth.models import Role

from .api.test_smart import Backend, bearer
from .test_access_matrix import RULES, _call, _operations, world  # noqa: F401 (a fixture)

PUBLIC = "public"
NEVER = "never"
"""SMART access tokens may not use the route at all (administration, patient-app codes)."""

EXPORTED_READ = [
    f"{kind}.{letter}"
    for kind in ("Patient", "QuestionnaireResponse", "Observation", "Condition")
    for letter in "rs"
]
"""What an export without ``_type`` needs: read and search of every patient-compartment type
it writes (Bulk Data Access: the export reads them all)."""

NEEDS: dict[tuple[str, str], Any] = {
    ("get", "/healthz"): PUBLIC,
    ("get", "/readyz"): PUBLIC,
    ("post", "/v1/auth/enroll"): PUBLIC,
    ("post", "/oauth/token"): PUBLIC,
    ("get", "/.well-known/smart-configuration"): PUBLIC,
    ("get", "/fhir/R4/.well-known/smart-configuration"): PUBLIC,
    ("get", "/fhir/R4/metadata"): PUBLIC,
    # FHIR: the interaction on the resource type
    ("get", "/fhir/R4/Questionnaire"): ["Questionnaire.s"],
    ("post", "/fhir/R4/Group"): ["Group.c"],
    ("get", "/fhir/R4/Group"): ["Group.s"],
    ("get", "/fhir/R4/Group/{group_id}"): ["Group.r"],
    # Bulk Data: without _type an export writes every patient-compartment type, so it needs
    # each one's read and search; its status and cancel need nothing more, a file its type's
    # read (the matrix downloads Patient.ndjson)
    ("get", "/fhir/R4/$export"): EXPORTED_READ,
    ("get", "/fhir/R4/Patient/$export"): EXPORTED_READ,
    ("get", "/fhir/R4/Group/{group_id}/$export"): ["Group.r", *EXPORTED_READ],
    ("get", "/fhir/R4/bulk/{export_id}"): [],
    ("delete", "/fhir/R4/bulk/{export_id}"): [],
    ("get", "/fhir/R4/bulk/{export_id}/{file_name}"): ["Patient.r"],
    ("get", "/fhir/R4/Questionnaire/{questionnaire_id}"): ["Questionnaire.r"],
    ("post", "/fhir/R4/QuestionnaireResponse"): ["QuestionnaireResponse.c"],
    ("get", "/fhir/R4/QuestionnaireResponse"): ["QuestionnaireResponse.s"],
    ("get", "/fhir/R4/QuestionnaireResponse/{response_id}"): ["QuestionnaireResponse.r"],
    ("post", "/fhir/R4/Observation"): ["Observation.c"],
    ("post", "/fhir/R4"): ["Observation.c"],
    ("get", "/fhir/R4/Observation"): ["Observation.s"],
    ("get", "/fhir/R4/Observation/{observation_id}"): ["Observation.r"],
    ("get", "/fhir/R4/Patient"): ["Patient.s"],
    ("get", "/fhir/R4/Patient/{patient_id}"): ["Patient.r"],
    ("get", "/fhir/R4/Condition"): ["Condition.s"],
    ("get", "/fhir/R4/Condition/{condition_id}"): ["Condition.r"],
    # /v1 patients: Patient
    ("post", "/v1/patients"): ["Patient.c"],
    ("get", "/v1/patients"): ["Patient.s"],
    ("get", "/v1/patients/{patient_id}"): ["Patient.r"],
    ("patch", "/v1/patients/{patient_id}"): ["Patient.u"],
    # /v1 assessments (completed forms): QuestionnaireResponse; trends (scores): Observation
    ("post", "/v1/patients/{patient_id}/assessments"): ["QuestionnaireResponse.c"],
    ("get", "/v1/patients/{patient_id}/assessments"): ["QuestionnaireResponse.s"],
    ("get", "/v1/assessments/{assessment_id}"): ["QuestionnaireResponse.r"],
    ("get", "/v1/assessments/{assessment_id}/history"): ["QuestionnaireResponse.r"],
    ("post", "/v1/assessments/{assessment_id}/amend"): ["QuestionnaireResponse.u"],
    ("post", "/v1/assessments/{assessment_id}/retract"): ["QuestionnaireResponse.u"],
    ("get", "/v1/patients/{patient_id}/trends"): ["Observation.s"],
    ("get", "/v1/patients/{patient_id}/charts/{instrument}.svg"): ["Observation.s"],
    # no FHIR resource type here: a system/* scope only
    ("post", "/v1/patients/{patient_id}/courses"): ["*.c"],
    ("get", "/v1/patients/{patient_id}/courses"): ["*.s"],
    ("get", "/v1/patients/{patient_id}/courses/{course_id}"): ["*.r"],
    ("post", "/v1/patients/{patient_id}/sessions"): ["*.c"],
    ("get", "/v1/patients/{patient_id}/sessions"): ["*.s"],
    ("get", "/v1/patients/{patient_id}/sessions/{session_id}"): ["*.r"],
    ("get", "/v1/sessions/{session_id}"): ["*.r"],
    ("get", "/v1/sessions/{session_id}/history"): ["*.r"],
    ("post", "/v1/sessions/{session_id}/amend"): ["*.u"],
    ("post", "/v1/sessions/{session_id}/retract"): ["*.u"],
    ("get", "/v1/patients/{patient_id}/signals"): ["*.r", "*.s"],
    ("get", "/v1/alerts"): ["*.s"],
    ("post", "/v1/alerts/{alert_id}/acknowledge"): ["*.u"],
    ("post", "/v1/alerts/{alert_id}/resolve"): ["*.u"],
    ("get", "/v1/events"): ["*.r", "*.s"],
    # every patient with their scores: Patient and Observation, read and search
    ("get", "/v1/caseload"): ["Patient.r", "Patient.s", "Observation.r", "Observation.s"],
    ("get", "/v1/reports/outcomes"): ["Patient.r", "Patient.s", "Observation.r", "Observation.s"],
    ("get", "/v1/reports/cms159"): ["Patient.r", "Patient.s", "Observation.r", "Observation.s"],
    # never with a SMART token
    ("post", "/v1/patients/{patient_id}/enrollments"): NEVER,
    ("get", "/v1/patients/{patient_id}/enrollments/{enrollment_id}"): NEVER,
    ("get", "/v1/policy"): NEVER,
    ("put", "/v1/policy"): NEVER,
    ("get", "/v1/organisation"): NEVER,
    ("put", "/v1/organisation"): NEVER,
    ("post", "/v1/tokens"): NEVER,
    ("get", "/v1/tokens"): NEVER,
    ("get", "/v1/tokens/{token_id}"): NEVER,
    ("delete", "/v1/tokens/{token_id}"): NEVER,
    ("get", "/v1/audit-events"): NEVER,
    ("post", "/v1/clients"): NEVER,
    ("get", "/v1/clients"): NEVER,
    ("get", "/v1/clients/{client_id}"): NEVER,
    ("patch", "/v1/clients/{client_id}"): NEVER,
    ("delete", "/v1/clients/{client_id}"): NEVER,
    ("post", "/v1/clients/{client_id}/keys"): NEVER,
    ("delete", "/v1/clients/{client_id}/keys/{kid}"): NEVER,
    ("post", "/v1/webhooks"): NEVER,
    ("get", "/v1/webhooks"): NEVER,
    ("get", "/v1/webhooks/{webhook_id}"): NEVER,
    ("patch", "/v1/webhooks/{webhook_id}"): NEVER,
    ("delete", "/v1/webhooks/{webhook_id}"): NEVER,
    ("post", "/v1/webhooks/{webhook_id}/rotate-secret"): NEVER,
    ("get", "/v1/webhooks/{webhook_id}/deliveries"): NEVER,
    ("post", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): NEVER,
}

SCOPE_SETS = [
    "system/Observation.rs",
    "system/Observation.read",
    "system/Patient.r",
    "system/Patient.rs",
    "system/Patient.c",
    "system/Patient.cruds",
    "system/QuestionnaireResponse.c",
    "system/QuestionnaireResponse.rs",
    "system/QuestionnaireResponse.write",
    "system/Questionnaire.rs",
    "system/Condition.read",
    "system/Patient.rs system/Observation.rs",
    "system/Patient.r system/Patient.s system/Observation.r",
    "system/*.r",
    "system/*.rs",
    "system/*.read",
    "system/*.write",
    "system/*.cruds",
    "system/*.*",
]
"""v2 and v1 forms, single and combined, per type and wildcard."""

_V1 = {"read": "rs", "write": "cud", "*": "cruds"}


def _granted(scope_set: str) -> set[tuple[str, str]]:
    """(resource type, permission letter) pairs the scopes grant, by the SMART spec."""
    granted = set()
    for word in scope_set.split():
        resource, _, permissions = word.removeprefix("system/").partition(".")
        for letter in _V1.get(permissions, permissions):
            granted.add((resource, letter))
    return granted


def _allowed(needs: list[str], scope_set: str) -> bool:
    granted = _granted(scope_set)
    for need in needs:
        resource, _, letter = need.partition(".")
        if (resource, letter) not in granted and ("*", letter) not in granted:
            return False
    return True


def test_every_operation_has_a_scope_decision(client) -> None:
    operations = _operations(client)
    missing = [op for op in operations if op not in NEEDS]
    assert not missing, f"routes without a scope decision in tests/test_scope_matrix.py: {missing}"
    stale = [op for op in NEEDS if op not in operations]
    assert not stale, f"scope decisions for routes that no longer exist: {stale}"
    # public here is public in the role matrix, and the reverse
    assert {op for op, need in NEEDS.items() if need == PUBLIC} == {
        op for op, rule in RULES.items() if rule == "public"
    }


def test_the_table_agrees_with_itself() -> None:
    """Spot checks of the helper against the cases the issue names."""
    assert _allowed(["Observation.s"], "system/Observation.rs")
    assert _allowed(["Observation.s"], "system/Observation.read")
    assert not _allowed(["Patient.c"], "system/Observation.rs")
    assert not _allowed(["Patient.c"], "system/QuestionnaireResponse.write")
    assert _allowed(["Patient.c", "Patient.u"], "system/*.write")
    assert not _allowed(["*.s"], "system/Patient.rs system/Observation.rs")


@pytest.fixture
def smart_headers(world) -> dict[str, dict[str, str]]:  # noqa: F811
    """An access token for each scope set, from one backend registered for everything."""
    tenant = world["tenant"]
    backend = Backend(tenant, scope="system/*.cruds")
    return {scope: bearer(backend.access_token(scope)) for scope in SCOPE_SETS}


def _is_insufficient_scope(resp: Any, path: str) -> bool:
    challenge = resp.headers.get("www-authenticate", "")
    if 'error="insufficient_scope"' not in challenge:
        return False
    if path.startswith("/fhir/"):
        body = resp.json()
        return (
            resp.headers["content-type"].startswith("application/fhir+json")
            and body["resourceType"] == "OperationOutcome"
            and body["issue"][0]["code"] == "forbidden"
            and "insufficient_scope" in body["issue"][0]["diagnostics"]
        )
    return resp.headers["content-type"].startswith("application/problem+json") and resp.json()[
        "type"
    ].endswith("/insufficient-scope")


_USED_UP = {("delete", "/fhir/R4/bulk/{export_id}")}
"""Operations whose target the first allowed call removes (a cancelled export): later scope
sets find it gone (404) once they are past authorisation; a refusal is still a 403."""


def test_every_scope_set_against_every_operation(world, client, smart_headers) -> None:  # noqa: F811
    failures = []
    for scope_set, headers in smart_headers.items():
        world["headers"]["smart"] = headers
        for method, path in _operations(client):
            needs = NEEDS.get((method, path))
            if needs is None or needs == PUBLIC:
                continue
            allowed = needs != NEVER and _allowed(needs, scope_set)
            resp = _call(world, method, path, "smart")
            status = resp.status_code
            if status >= 500:
                failures.append((scope_set, method, path, status, "no 5xx"))
            elif allowed and (
                status in (401, 403) or (status == 404 and (method, path) not in _USED_UP)
            ):
                failures.append((scope_set, method, path, status, "allowed", resp.text[:120]))
            elif not allowed and (status != 403 or not _is_insufficient_scope(resp, path)):
                failures.append((scope_set, method, path, status, "insufficient_scope"))
    assert not failures, "\n".join(map(str, failures))


def test_observation_token_cannot_create_patients_or_read_the_caseload(tenant) -> None:
    """The integration engineer's finding: a token scoped to ``system/Observation.rs`` could
    still create patients and read the caseload."""
    patient_id = tenant.patient()
    backend = Backend(tenant, scope="system/*.cruds")
    token = bearer(backend.access_token("system/Observation.rs"))
    created = tenant.client.post("/v1/patients", json={"external_id": "scope-1"}, headers=token)
    assert created.status_code == 403, created.text
    assert created.json()["detail"] == "insufficient_scope: this request needs system/Patient.c."
    assert created.headers["www-authenticate"] == (
        'Bearer realm="kap-outcomes", error="insufficient_scope", scope="system/Patient.c"'
    )
    caseload = tenant.client.get("/v1/caseload", headers=token)
    assert caseload.status_code == 403, caseload.text
    fhir_patient = tenant.client.get(f"/fhir/R4/Patient/{patient_id}", headers=token)
    assert fhir_patient.status_code == 403
    assert fhir_patient.json()["resourceType"] == "OperationOutcome"
    assert fhir_patient.json()["issue"][0]["code"] == "forbidden"
    # what it may do, it does
    found = tenant.client.get(f"/fhir/R4/Observation?patient={patient_id}", headers=token)
    assert found.status_code == 200, found.text
    # and nothing was stored by the refused create
    assert tenant.get("/v1/patients").json()["data"] == [
        p for p in tenant.get("/v1/patients").json()["data"] if p["external_id"] != "scope-1"
    ]


def test_staff_tokens_keep_their_role_rules(tenant) -> None:
    """Scopes concern SMART access tokens only: an integration API token still creates
    patients and reads the caseload, as its role allows."""
    created = tenant.post("/v1/patients", {"external_id": "staff-1"}, Role.integration)
    assert created.status_code == 201
    assert tenant.get("/v1/caseload", Role.integration).status_code == 200


@pytest.mark.parametrize(
    ("search", "scope", "allowed"),
    [
        (
            "QuestionnaireResponse?_include=QuestionnaireResponse:subject",
            "system/QuestionnaireResponse.rs",
            False,
        ),
        (
            "QuestionnaireResponse?_include=QuestionnaireResponse:subject",
            "system/QuestionnaireResponse.rs system/Patient.r",
            True,
        ),
        ("Observation?_include=Observation:derived-from", "system/Observation.rs", False),
        (
            "Observation?_include=Observation:derived-from",
            "system/Observation.rs system/QuestionnaireResponse.read",
            True,
        ),
        ("Observation?_include=Observation:subject", "system/Observation.rs", False),
        ("Observation?_include=Observation:patient", "system/Observation.rs", False),
        (
            "QuestionnaireResponse?_include=QuestionnaireResponse:patient",
            "system/QuestionnaireResponse.rs",
            False,
        ),
        ("Observation", "system/Observation.rs", True),
    ],
)
def test_an_include_needs_the_scope_of_what_it_includes(tenant, search, scope, allowed) -> None:
    """An ``_include`` serves resources of another type: a token that may search forms but
    not read patients must not receive the patients through ``QuestionnaireResponse:subject``."""
    patient_id = tenant.patient()
    backend = Backend(tenant, scope="system/*.cruds")
    token = bearer(backend.access_token(scope))
    resp = tenant.client.get(
        f"/fhir/R4/{search}&patient={patient_id}"
        if "?" in search
        else f"/fhir/R4/{search}?patient={patient_id}",
        headers=token,
    )
    if allowed:
        assert resp.status_code == 200, resp.text
    else:
        assert resp.status_code == 403, resp.text
        assert _is_insufficient_scope(resp, "/fhir/")


@pytest.mark.parametrize(
    ("query", "scope", "allowed"),
    [
        ("_type=Patient", "system/Patient.rs", True),
        ("_type=Patient,Observation", "system/Patient.rs", False),
        ("_type=Patient,Observation", "system/Patient.rs system/Observation.read", True),
        ("_type=Patient&_type=Condition", "system/Patient.rs", False),
        ("", "system/Patient.rs system/Observation.rs", False),
        ("", "system/*.rs", True),
    ],
)
def test_an_export_needs_the_read_scope_of_every_type_it_writes(tenant, query, scope, allowed):
    """SMART Bulk Data: a client may export only what it may read; without ``_type`` an export
    writes every type, so it needs them all."""
    backend = Backend(tenant, scope="system/*.cruds")
    headers = bearer(backend.access_token(scope)) | {
        "Accept": "application/fhir+json",
        "Prefer": "respond-async",
    }
    resp = tenant.client.get(f"/fhir/R4/$export?{query}", headers=headers)
    if allowed:
        assert resp.status_code == 202, resp.text
        tenant.client.delete(resp.headers["content-location"], headers=headers)
    else:
        assert resp.status_code == 403, resp.text
        assert _is_insufficient_scope(resp, "/fhir/")
