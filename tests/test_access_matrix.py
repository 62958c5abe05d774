"""The access matrix: every operation of the OpenAPI document, for every kind of caller.

One declared table (``RULES``) says, for each operation, which roles may use it. The test
walks the app's own OpenAPI document, so a new route without a rule fails the suite. Callers:
the four roles, a patient token on *another* patient, and no, expired, revoked, forged and
malformed tokens (always 401 on a protected route).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy import insert, text

from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import issue_token
from kap_outcomes.bulk.runner import run_next
from kap_outcomes.webhooks.models import WebhookDelivery

# What a role gets: "ok" means past authentication and authorisation (any status but 401,
# 403 and 404), "403" a role that may not use the operation at all, "404" a patient token on
# a resource of another patient (it must not learn that it exists).
OK, FORBIDDEN, HIDDEN = "ok", "403", "404"
STAFF = {
    "admin": OK,
    "clinician": OK,
    "integration": OK,
    "patient": FORBIDDEN,
    "other_patient": FORBIDDEN,
}
STAFF_AND_OWN_PATIENT = {
    "admin": OK,
    "clinician": OK,
    "integration": OK,
    "patient": OK,
    "other_patient": HIDDEN,
}
ADMIN_ONLY = {
    "admin": OK,
    "clinician": FORBIDDEN,
    "integration": FORBIDDEN,
    "patient": FORBIDDEN,
    "other_patient": FORBIDDEN,
}
ADMIN_AND_CLINICIAN = {
    "admin": OK,
    "clinician": OK,
    "integration": FORBIDDEN,
    "patient": FORBIDDEN,
    "other_patient": FORBIDDEN,
}
PUBLIC = "public"
ANY_TOKEN = {role: OK for role in STAFF}
"""Questionnaires, and FHIR searches: a patient token searches its own patient's data only
(tests/fhir), so another patient's token gets its own (empty) results, not a 404."""

RULES: dict[tuple[str, str], Any] = {
    ("get", "/healthz"): PUBLIC,
    ("get", "/readyz"): PUBLIC,
    ("post", "/v1/auth/enroll"): PUBLIC,
    ("post", "/v1/patients"): STAFF,
    ("get", "/v1/patients"): STAFF,
    ("get", "/v1/patients/{patient_id}"): STAFF_AND_OWN_PATIENT,
    ("patch", "/v1/patients/{patient_id}"): STAFF,
    ("get", "/v1/reports/outcomes"): STAFF,
    ("get", "/v1/reports/cms159"): STAFF,
    ("post", "/v1/patients/{patient_id}/courses"): STAFF,
    ("get", "/v1/patients/{patient_id}/courses"): STAFF,
    ("get", "/v1/patients/{patient_id}/courses/{course_id}"): STAFF,
    ("post", "/v1/patients/{patient_id}/sessions"): STAFF,
    ("get", "/v1/patients/{patient_id}/sessions"): STAFF,
    ("get", "/v1/patients/{patient_id}/sessions/{session_id}"): STAFF,
    ("post", "/v1/patients/{patient_id}/assessments"): STAFF_AND_OWN_PATIENT,
    ("get", "/v1/patients/{patient_id}/assessments"): STAFF_AND_OWN_PATIENT,
    ("get", "/v1/patients/{patient_id}/trends"): STAFF_AND_OWN_PATIENT,
    ("get", "/v1/patients/{patient_id}/signals"): STAFF_AND_OWN_PATIENT,
    ("get", "/v1/patients/{patient_id}/charts/{instrument}.svg"): STAFF_AND_OWN_PATIENT,
    ("post", "/v1/patients/{patient_id}/enrollments"): ADMIN_AND_CLINICIAN,
    ("get", "/v1/patients/{patient_id}/enrollments/{enrollment_id}"): ADMIN_AND_CLINICIAN,
    ("get", "/v1/assessments/{assessment_id}"): STAFF_AND_OWN_PATIENT,
    ("get", "/v1/assessments/{assessment_id}/history"): STAFF_AND_OWN_PATIENT,
    ("post", "/v1/assessments/{assessment_id}/amend"): STAFF,
    ("post", "/v1/assessments/{assessment_id}/retract"): STAFF,
    ("get", "/v1/sessions/{session_id}"): STAFF,
    ("get", "/v1/sessions/{session_id}/history"): STAFF,
    ("post", "/v1/sessions/{session_id}/amend"): STAFF,
    ("post", "/v1/sessions/{session_id}/retract"): STAFF,
    ("get", "/v1/alerts"): STAFF,
    ("post", "/v1/alerts/{alert_id}/acknowledge"): STAFF,
    ("post", "/v1/alerts/{alert_id}/resolve"): STAFF,
    ("get", "/v1/caseload"): STAFF,
    ("get", "/v1/policy"): ADMIN_ONLY,
    ("put", "/v1/policy"): ADMIN_ONLY,
    ("get", "/v1/organisation"): ADMIN_ONLY,
    ("put", "/v1/organisation"): ADMIN_ONLY,
    ("post", "/v1/tokens"): ADMIN_ONLY,
    ("get", "/v1/tokens"): ADMIN_ONLY,
    ("delete", "/v1/tokens/{token_id}"): ADMIN_ONLY,
    ("get", "/v1/tokens/{token_id}"): ADMIN_ONLY,
    ("get", "/v1/audit-events"): ADMIN_ONLY,
    ("post", "/v1/clients"): ADMIN_ONLY,
    ("get", "/v1/clients/{client_id}"): ADMIN_ONLY,
    ("get", "/v1/clients"): ADMIN_ONLY,
    ("patch", "/v1/clients/{client_id}"): ADMIN_ONLY,
    ("delete", "/v1/clients/{client_id}"): ADMIN_ONLY,
    ("post", "/v1/clients/{client_id}/keys"): ADMIN_ONLY,
    ("delete", "/v1/clients/{client_id}/keys/{kid}"): ADMIN_ONLY,
    # a patient token reads the feed too, narrowed to its own assessment events
    ("get", "/v1/events"): ANY_TOKEN,
    ("post", "/v1/webhooks"): ADMIN_ONLY,
    ("get", "/v1/webhooks"): ADMIN_ONLY,
    ("get", "/v1/webhooks/{webhook_id}"): ADMIN_ONLY,
    ("patch", "/v1/webhooks/{webhook_id}"): ADMIN_ONLY,
    ("delete", "/v1/webhooks/{webhook_id}"): ADMIN_ONLY,
    ("post", "/v1/webhooks/{webhook_id}/rotate-secret"): ADMIN_ONLY,
    ("get", "/v1/webhooks/{webhook_id}/deliveries"): ADMIN_ONLY,
    ("post", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): ADMIN_ONLY,
    ("post", "/oauth/token"): PUBLIC,
    ("get", "/.well-known/smart-configuration"): PUBLIC,
    ("get", "/fhir/R4/.well-known/smart-configuration"): PUBLIC,
    ("get", "/fhir/R4/metadata"): PUBLIC,
    ("get", "/fhir/R4/Questionnaire"): ANY_TOKEN,
    ("get", "/fhir/R4/Questionnaire/{questionnaire_id}"): ANY_TOKEN,
    # Without a body every caller gets past authentication to a 400; that a patient token
    # cannot file a form for another patient is tested in tests/fhir (subject → 422).
    ("post", "/fhir/R4/QuestionnaireResponse"): ANY_TOKEN,
    # the same for scores sent as Observations and for transaction Bundles of them
    ("post", "/fhir/R4/Observation"): ANY_TOKEN,
    ("post", "/fhir/R4"): ANY_TOKEN,
    ("get", "/fhir/R4/QuestionnaireResponse"): ANY_TOKEN,
    ("get", "/fhir/R4/QuestionnaireResponse/{response_id}"): STAFF_AND_OWN_PATIENT,
    ("get", "/fhir/R4/Observation"): ANY_TOKEN,
    ("get", "/fhir/R4/Observation/{observation_id}"): STAFF_AND_OWN_PATIENT,
    ("get", "/fhir/R4/Patient"): ANY_TOKEN,
    ("get", "/fhir/R4/Patient/{patient_id}"): STAFF_AND_OWN_PATIENT,
    ("get", "/fhir/R4/Condition"): ANY_TOKEN,
    ("get", "/fhir/R4/Condition/{condition_id}"): STAFF_AND_OWN_PATIENT,
    # bulk export: organisation-wide, so staff only (tests/fhir/test_bulk_export.py: another
    # organisation's export is a 404)
    ("get", "/fhir/R4/$export"): STAFF,
    ("get", "/fhir/R4/Patient/$export"): STAFF,
    ("get", "/fhir/R4/Group/{group_id}/$export"): STAFF,
    ("get", "/fhir/R4/bulk/{export_id}"): STAFF,
    # one export, deleted by the first caller (the admin): for the next ones it is gone
    # (every staff role may cancel: tests/fhir/test_bulk_export.py)
    ("delete", "/fhir/R4/bulk/{export_id}"): STAFF | {"clinician": HIDDEN, "integration": HIDDEN},
    ("get", "/fhir/R4/bulk/{export_id}/{file_name}"): STAFF,
    ("post", "/fhir/R4/Group"): STAFF,
    ("get", "/fhir/R4/Group"): STAFF,
    ("get", "/fhir/R4/Group/{group_id}"): STAFF,
}

BODIES: dict[tuple[str, str], Any] = {
    ("post", "/v1/auth/enroll"): {"code": "0000-0000-0000-0000"},
    ("post", "/v1/patients"): {"external_id": "matrix"},
    ("post", "/v1/patients/{patient_id}/courses"): {},
    ("post", "/v1/patients/{patient_id}/sessions"): {
        "kind": "intake",
        "occurred_at": "2026-03-01T15:00:00Z",
    },
    ("post", "/v1/patients/{patient_id}/assessments"): {
        "instrument": "phq9",
        "items": [1, 1, 1, 1, 1, 1, 1, 1, 1],
        "administered_at": "2026-03-02T15:04:05Z",
    },
    ("post", "/v1/assessments/{assessment_id}/amend"): {"items": [0] * 9, "reason": "matrix"},
    ("post", "/v1/assessments/{assessment_id}/retract"): {"reason": "matrix"},
    ("post", "/v1/sessions/{session_id}/amend"): {"reason": "matrix"},
    ("post", "/v1/sessions/{session_id}/retract"): {"reason": "matrix"},
    ("post", "/v1/alerts/{alert_id}/acknowledge"): {},
    ("post", "/v1/alerts/{alert_id}/resolve"): {},
    ("put", "/v1/policy"): {},
    ("put", "/v1/organisation"): {"timezone": "UTC"},
    ("post", "/v1/tokens"): {"role": "clinician"},
    ("post", "/v1/clients"): {"name": "matrix", "jwks": {"keys": []}, "scope": "system/*.rs"},
    ("patch", "/v1/clients/{client_id}"): {"name": "matrix, renamed"},
    ("post", "/v1/clients/{client_id}/keys"): {"kty": "oct", "kid": "matrix-bad"},
    ("post", "/v1/webhooks"): {
        "url": "https://hooks.example.org/m",
        "event_types": ["alert.opened"],
    },
    ("patch", "/v1/webhooks/{webhook_id}"): {"description": "matrix"},
}
PARAMS: dict[tuple[str, str], dict[str, str]] = {
    # deleting must not take the webhook (or client) that the operations after it read
    ("delete", "/v1/webhooks/{webhook_id}"): {"webhook_id": "disposable_webhook_id"},
    ("delete", "/v1/clients/{client_id}"): {"client_id": "disposable_client_id"},
    ("delete", "/fhir/R4/bulk/{export_id}"): {"export_id": "disposable_export_id"},
}
QUERIES: dict[tuple[str, str], str] = {
    ("get", "/v1/patients/{patient_id}/trends"): "?instrument=phq9",
}
FILTERS: dict[tuple[str, str], str] = {
    ("get", "/v1/alerts"): "?patient_id={patient_id}",
    ("get", "/fhir/R4/QuestionnaireResponse"): "?patient=Patient/{patient_id}",
    ("get", "/fhir/R4/Observation"): "?patient={patient_id}",
    ("get", "/fhir/R4/Condition"): "?subject=Patient/{patient_id}",
}
"""Searches filtered by the patient, in the audit test: their events must name it."""
ABOUT_THE_PATIENT = (
    "{patient_id}",
    "{assessment_id}",
    "{alert_id}",
    "{response_id}",
    "{observation_id}",
    "{session_id}",
    "{condition_id}",
)
"""Path parameters of the world's resources, all of which belong to its patient."""
ROLES = ["admin", "clinician", "integration", "patient", "other_patient"]
UNAUTHENTICATED = ["none", "expired", "revoked", "forged", "malformed"]


def _operations(client) -> list[tuple[str, str]]:
    doc = client.get("/openapi.json").json()
    return sorted((method, path) for path, ops in doc["paths"].items() for method in ops)


def _exports(tenant, settings) -> dict[str, str]:
    """A group of the world's patient, a completed export and one to delete."""
    group = tenant.post(
        "/fhir/R4/Group",
        {"resourceType": "Group", "type": "person", "actual": True, "name": "matrix"},
    ).json()
    made = {"group_id": group["id"], "file_name": "Patient.ndjson"}
    for name in ("export_id", "disposable_export_id"):
        resp = tenant.client.get(
            "/fhir/R4/Patient/$export",
            headers=tenant.headers() | {"Prefer": "respond-async"},
        )
        made[name] = resp.headers["content-location"].rsplit("/", 1)[1]
    while run_next(tenant.db, settings, owner="matrix"):
        pass
    return made


@pytest.fixture
def world(tenant, db, settings):
    """A patient with an assessment that opened an alert, another patient, and every caller."""
    pid = tenant.patient()
    other = tenant.patient()
    created = tenant.post(
        f"/v1/patients/{pid}/assessments",
        {"instrument": "phq9", "items": [1] * 9, "administered_at": "2026-03-02T15:04:05Z"},
    ).json()
    # what the single-resource reads of created things need (their 201 Location)
    course = tenant.post(f"/v1/patients/{pid}/courses", {}).json()
    session = tenant.post(
        f"/v1/patients/{pid}/sessions", {"kind": "intake", "occurred_at": "2026-03-01T15:00:00Z"}
    ).json()
    enrollment = tenant.post(f"/v1/patients/{pid}/enrollments", None).json()
    backend_key = ec.generate_private_key(ec.SECP384R1()).public_key()
    backend_jwk = ECAlgorithm.to_jwk(backend_key, as_dict=True)
    backend, disposable_backend = (
        tenant.post(
            "/v1/clients",
            {
                "name": "matrix",
                "jwks": {"keys": [backend_jwk | {"kid": "m1"}, backend_jwk | {"kid": "m2"}]},
                "scope": "system/*.rs",
            },
            Role.admin,
        ).json()
        for _ in range(2)
    )

    def tokens(conn: Any) -> dict[str, str]:
        org = tenant.org_id
        past = datetime.now(UTC) - timedelta(days=1)
        expired_id, expired = issue_token(
            conn, organisation_id=org, role=Role.clinician, expires_at=past
        )
        revoked_id, revoked = issue_token(conn, organisation_id=org, role=Role.clinician)
        conn.execute(
            text("UPDATE api_tokens SET revoked_at = expires_at WHERE id = :i"), {"i": expired_id}
        )
        conn.execute(
            text("UPDATE api_tokens SET revoked_at = created_at WHERE id = :i"), {"i": revoked_id}
        )
        disposable_id, _ = issue_token(conn, organisation_id=org, role=Role.clinician)
        # a recorded condition, for the Condition reads (as PATCH /v1/patients stores it)
        conn.execute(
            text("UPDATE patients SET conditions = 'depression' WHERE id = :i"), {"i": pid}
        )
        return {
            "disposable": disposable_id,
            "patient": issue_token(conn, organisation_id=org, role=Role.patient, patient_id=pid)[1],
            "other_patient": issue_token(
                conn, organisation_id=org, role=Role.patient, patient_id=other
            )[1],
            "expired": expired,
            "revoked": revoked,
        }

    made = db.run_write(tokens)
    token_id = made.pop("disposable")
    webhooks = _webhooks(tenant, db)
    exports = _exports(tenant, settings)
    headers = {role: tenant.headers(Role(role)) for role in ("admin", "clinician", "integration")}
    headers |= {name: {"Authorization": f"Bearer {tok}"} for name, tok in made.items()}
    headers["none"] = {}
    headers["forged"] = {"Authorization": "Bearer kap_" + "A" * 43}
    headers["malformed"] = {"Authorization": "Basic dXNlcjpwYXNz"}
    return {
        "tenant": tenant,
        "params": {
            "patient_id": pid,
            "assessment_id": created["id"],
            "alert_id": created["alerts"][0]["id"],
            "token_id": token_id,
            "course_id": course["id"],
            "session_id": session["id"],
            "enrollment_id": enrollment["id"],
            "client_id": backend["client_id"],
            "disposable_client_id": disposable_backend["client_id"],
            "kid": "m2",
            "response_id": created["id"],
            "observation_id": f"{created['id']}-total",
            "condition_id": f"{pid}-depression",
            "questionnaire_id": "phq-9",
            **webhooks,
            **exports,
        },
        "headers": headers,
    }


def _webhooks(tenant, db) -> dict[str, str]:
    """A webhook with one delivery, and one to delete; both disabled at once, so that no
    worker ever sends anything to them."""
    made = {}
    for name in ("webhook_id", "disposable_webhook_id"):
        resp = tenant.post(
            "/v1/webhooks",
            {"url": "https://hooks.example.org/matrix", "event_types": ["alert.opened"]},
            role=Role.admin,
        )
        made[name] = resp.json()["id"]
    made["delivery_id"] = str(uuid.uuid4())
    made["instrument"] = "phq9"  # a path parameter that names no row

    def disable(conn: Any) -> None:
        conn.execute(
            text("UPDATE webhook_endpoints SET enabled = false WHERE organisation_id = :o"),
            {"o": tenant.org_id},
        )
        now = datetime.now(UTC)
        conn.execute(
            insert(WebhookDelivery.__table__).values(
                id=made["delivery_id"],
                organisation_id=tenant.org_id,
                endpoint_id=made["webhook_id"],
                event_id=str(uuid.uuid4()),
                event_type="alert.opened",
                status="failed",
                attempts=1,
                retry_step=0,
                next_attempt_at=now,
                created_at=now,
            )
        )

    db.run_write(disable)
    return made


def _call(world, method: str, path: str, caller: str, query: str | None = None):
    tenant = world["tenant"]
    params = world["params"] | {
        name: world["params"][other] for name, other in PARAMS.get((method, path), {}).items()
    }
    url = path.format(**params) + (query or QUERIES.get((method, path), "")).format(**params)
    headers = world["headers"][caller] | {"If-Match": "*"}
    body = BODIES.get((method, path))
    kwargs: dict[str, Any] = {}
    if body is not None:
        kwargs["content"] = json.dumps(body)
        headers = headers | {"content-type": "application/json"}
    return tenant.client.request(method.upper(), url, headers=headers, **kwargs)


def test_every_operation_has_a_rule(client):
    missing = [op for op in _operations(client) if op not in RULES]
    assert not missing, f"routes without an access rule in tests/test_access_matrix.py: {missing}"
    stale = [op for op in RULES if op not in _operations(client)]
    assert not stale, f"rules for routes that no longer exist: {stale}"


def test_the_matrix(world, client):
    failures = []
    for method, path in _operations(client):
        rule = RULES.get((method, path))
        if rule is None:
            continue
        for caller in UNAUTHENTICATED:
            status = _call(world, method, path, caller).status_code
            if status >= 500:
                failures.append((method, path, caller, status, "no 5xx"))
            elif rule == PUBLIC:
                if status in (401, 403):
                    failures.append((method, path, caller, status, "public"))
            elif status != 401:
                failures.append((method, path, caller, status, "401"))
        if rule == PUBLIC:
            continue
        for caller in ROLES:
            status = _call(world, method, path, caller).status_code
            expected = rule[caller]
            if status >= 500:
                failures.append((method, path, caller, status, "no 5xx"))
            elif expected == OK and status in (401, 403, 404):
                failures.append((method, path, caller, status, "allowed"))
            elif expected in (FORBIDDEN, HIDDEN) and status != int(expected):
                failures.append((method, path, caller, status, expected))
    assert not failures, "\n".join(map(str, failures))


def test_every_authenticated_call_leaves_one_audit_event(world, client, db):
    """Audit completeness: each operation, called by a role allowed to, records one event with
    its action, outcome status, role, request id and the patient it concerned (refusals are
    recorded too; a 5xx is a failure of its own)."""
    missing = []
    for number, (method, path) in enumerate(_operations(client)):
        rule = RULES.get((method, path))
        if rule is None or rule == PUBLIC or path.startswith("/.well-known"):
            continue
        caller = "clinician" if rule.get("clinician") == OK else "admin"
        request_id = f"audit-{number}-{method}"
        world["headers"][caller] = world["headers"][caller] | {"X-Request-ID": request_id}
        query = FILTERS.get((method, path))
        try:
            resp = _call(world, method, path, caller, query)
        finally:
            del world["headers"][caller]["X-Request-ID"]
        status = resp.status_code
        rows = db.run_read(
            lambda c, rid=request_id: c.execute(
                text(
                    "SELECT action, status, role, patient_id FROM audit_events"
                    " WHERE request_id = :r"
                ),
                {"r": rid},
            ).all()
        )
        patient = None
        if query or any(name in path for name in ABOUT_THE_PATIENT):
            patient = world["params"]["patient_id"]
        elif (method, path) == ("post", "/v1/patients") and status == 201:
            patient = resp.json()["id"]  # the patient it created
        expected = [(f"{method.upper()} {path}", status, caller, patient)]
        if status >= 500 or [tuple(r) for r in rows] != expected:
            missing.append((method, path, status, [tuple(r) for r in rows]))
    assert not missing, "\n".join(map(str, missing))
