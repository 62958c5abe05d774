"""What the OpenAPI document promises beyond what FastAPI infers from the routes.

FastAPI writes each route's parameters, body and success response. This module finishes the
document so that it tells the whole truth to generated clients:

- **Errors by the operation's shape**, added to what a route declares itself (with
  :func:`kap_outcomes.http.problems`): every operation can get a 429 (throttling happens
  before routing); a body-taking one a 413 and 415; a protected one 401, 403, 503; one with
  a path parameter 404; one with parameters or a body 422; an idempotent create 409.
- **One error shape per surface**: ``application/problem+json`` with ``Problem`` on /v1 and
  the rest, ``application/fhir+json`` with ``OperationOutcome`` on /fhir (never one model per
  status). The OAuth token endpoint keeps its RFC 6749 error bodies.
- **Response headers** (``http.RESPONSE_HEADERS``): ``X-Request-ID`` on every response,
  ``Retry-After`` on 429 and 503,
  ``WWW-Authenticate`` on 401, ``Idempotent-Replayed`` on idempotent creates, and what a
  route declares (``ETag``, ``Location``).
- ``servers``, the security schemes, readable camelCase operation ids (:func:`operation_id`).

A new error status of a route: declare it with ``responses=problems(400, ...)`` (/fhir routes
too); its content and headers follow from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from kap_outcomes.auth.dependencies import BEARER_SCHEME, current_principal, get_db
from kap_outcomes.fhir.outcome import FHIR_MEDIA_TYPE, is_fhir_path
from kap_outcomes.fhir.router import RESOURCE_SCHEMAS
from kap_outcomes.http import (
    DOCUMENTED_SCHEMAS,
    MANUAL_BODIES,
    PROBLEM_DESCRIPTIONS,
    PROBLEM_MEDIA_TYPE,
    Problem,
    header,
)
from kap_outcomes.middleware import FORM_PATH
from kap_outcomes.smart import access as smart_access
from kap_outcomes.smart.router import SCOPES_SUPPORTED
from kap_outcomes.smart.tokens import TOKEN_PATH

SCHEMA_REF = "#/components/schemas/"
HEADER_REF = "#/components/headers/"
_SHARED_HEADERS = ("X-Request-ID", "Retry-After", "WWW-Authenticate")
"""Headers declared once (components.headers, required where they appear) and referenced."""

OPERATION_OUTCOME: dict[str, Any] = {
    "type": "object",
    "description": "FHIR R4 OperationOutcome: the body of every error on /fhir.",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"type": "string", "const": "OperationOutcome"},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {"$ref": SCHEMA_REF + "OperationOutcomeIssue"},
        },
    },
}
OPERATION_OUTCOME_ISSUE: dict[str, Any] = {
    "type": "object",
    "required": ["severity", "code"],
    "properties": {
        "severity": {"type": "string", "enum": ["fatal", "error", "warning", "information"]},
        "code": {"type": "string", "description": "FHIR IssueType (invalid, not-found, …)"},
        "diagnostics": {"type": "string"},
        "expression": {"type": "array", "items": {"type": "string"}},
    },
}

_QUESTIONNAIRE_RESPONSE_EXAMPLE: dict[str, Any] = {
    "resourceType": "QuestionnaireResponse",
    "status": "completed",
    "questionnaire": "http://loinc.org/q/44249-1",
    "subject": {
        "identifier": {
            "system": "https://kap-outcomes.dev/fhir/sid/external-id",
            "value": "ehr-4711",
        }
    },
    "authored": "2026-03-02T15:04:05Z",
    "item": [
        {"linkId": code, "answer": [{"valueCoding": {"system": "http://loinc.org", "code": ans}}]}
        for code, ans in [
            ("44250-9", "LA6569-3"),
            ("44255-8", "LA6569-3"),
            ("44259-0", "LA6568-5"),
            ("44254-1", "LA6568-5"),
            ("44251-7", "LA6569-3"),
            ("44258-2", "LA6568-5"),
            ("44252-5", "LA6568-5"),
            ("44253-3", "LA6568-5"),
            ("44260-8", "LA6568-5"),
        ]
    ],
}


def _score_observation(code: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"identifier": {"system": "https://ehr.example.org/mrn", "value": "MRN000123"}},
        "effectiveDateTime": "2026-03-02T15:04:05Z",
        **value,
    }


_SCORES_TRANSACTION: dict[str, Any] = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {
            "fullUrl": f"urn:uuid:{uuid}",
            "resource": resource,
            "request": {"method": "POST", "url": "Observation"},
        }
        for uuid, resource in [
            (
                "5b0f4c52-4a4e-4d7a-9a43-3d0d8f1f6c11",
                _score_observation("44261-6", {"valueInteger": 12}),
            ),
            (
                "5b0f4c52-4a4e-4d7a-9a43-3d0d8f1f6c12",
                _score_observation(
                    "44260-8",
                    {
                        "valueCodeableConcept": {
                            "coding": [{"system": "http://loinc.org", "code": "LA6568-5"}]
                        }
                    },
                ),
            ),
        ]
    ],
}

REQUEST_EXAMPLES: dict[str, Any] = {
    "PatientCreate": {
        "external_id": "ehr-4711",
        "identifiers": [{"system": "https://ehr.example.org/mrn", "value": "MRN000123"}],
    },
    "AssessmentCreate": {
        "instrument": "phq9",
        "items": [1, 2, 1, 0, 1, 2, 1, 0, 0],
        "difficulty": 1,
        "administered_at": "2026-03-02T15:04:05Z",
        "source": "patient",
    },
    "AssessmentAmend": {
        "items": [1, 2, 1, 0, 1, 2, 1, 0, 1],
        "reason": "Item 9 was transcribed wrongly from the paper form.",
    },
    "AssessmentRetract": {"reason": "Recorded for the wrong patient."},
    "CourseCreate": {"started_at": "2026-03-01T09:00:00Z", "induction_doses": 6},
    "SessionCreate": {
        "kind": "dosing",
        "occurred_at": "2026-03-02T15:00:00Z",
        "dose": {"route": "im", "amount_mg": 50},
    },
    "AlertAction": {"note": "Called the patient; safety plan reviewed."},
    "TokenCreate": {"role": "integration", "label": "EHR bridge"},
    "EnrollRequest": {"code": "K7Q2-M9XD"},
    "ClientCreate": {
        "name": "Clinic EHR",
        "jwks": {
            "keys": [
                {
                    "kty": "EC",
                    "crv": "P-384",
                    "x": "D7E4vaOdATorXVAo7F8WKPE8ex5BRsNfI2jGEV1t44hnGZz36Yo3oA1kyEdmL678",
                    "y": "uIf3UtelEe1YnWmx3kVrosA0BfxnCXH0dVmSZHQW7KQWv5uyjlNLnZYgPPQjfCkz",
                    "kid": "example-key-1",
                    "alg": "ES384",
                    "use": "sig",
                }
            ]
        },
        "scope": "system/Patient.rs system/Observation.rs system/QuestionnaireResponse.cruds",
    },
    "ClientUpdate": {"name": "Clinic EHR (nightly)", "scope": "system/Observation.rs"},
    "PublicKey": {
        "kty": "EC",
        "crv": "P-384",
        "x": "D7E4vaOdATorXVAo7F8WKPE8ex5BRsNfI2jGEV1t44hnGZz36Yo3oA1kyEdmL678",
        "y": "uIf3UtelEe1YnWmx3kVrosA0BfxnCXH0dVmSZHQW7KQWv5uyjlNLnZYgPPQjfCkz",
        "kid": "example-key-2",
        "alg": "ES384",
        "use": "sig",
    },
    "PolicyChange": {"induction_doses": 4, "phq9": {"rise_from_nadir": 4}},
    "WebhookCreate": {
        "url": "https://ehr.example.org/hooks/kap",
        "event_types": ["alert.opened", "signal.changed"],
        "description": "Safety alerts to the on-call inbox",
    },
    "WebhookUpdate": {"event_types": ["alert.opened"], "enabled": True},
    "OrganisationSettingsUpdate": {"timezone": "America/Los_Angeles"},
    "PatientUpdate": {"age_group": "18+", "conditions": ["depression"]},
    "SessionAmend": {
        "occurred_at": "2026-03-03T15:00:00Z",
        "reason": "Entered on the wrong day; the dose was given on 3 March.",
    },
    "SessionRetract": {"reason": "Entered twice."},
    "QuestionnaireResponse": _QUESTIONNAIRE_RESPONSE_EXAMPLE,
    "Observation": _score_observation("44261-6", {"valueString": "12"}),
    "Bundle": _SCORES_TRANSACTION,
    # members are Patient/{id} references of the organisation's own patients
    "Group": {"resourceType": "Group", "type": "person", "actual": True, "name": "Spring cohort"},
}
"""One example of each request body, by schema name (synthetic data; a public key only)."""

SMART_SCHEME: dict[str, Any] = {
    "type": "oauth2",
    "description": "SMART Backend Services: `client_credentials` with a `private_key_jwt` "
    "client assertion; the access token is then sent as `Authorization: Bearer`.",
    "flows": {
        "clientCredentials": {
            "tokenUrl": TOKEN_PATH,
            "scopes": {scope: "SMART system scope" for scope in SCOPES_SUPPORTED}
            | {
                scope.text: "SMART v2 system scope"
                for needs in smart_access.ROUTE_SCOPES.values()
                for scope in needs or ()
            },
        }
    },
}

SERVERS = [{"url": "/", "description": "This service (relative to the document's own URL)"}]

_NO_DATABASE = frozenset({"/healthz", "/fhir/R4/metadata", "/.well-known/smart-configuration"})
"""Operations that answer without the database (no 503)."""

_WITH_BODY = frozenset({"post", "put", "patch"})
"""Methods whose bodies the RequestBodyRules middleware checks (413, 415)."""

_OPERATION_IDS = {
    "token": "issueAccessToken",
    "enroll": "enrollPatientApp",
    "assessment_history": "getAssessmentHistory",
    "healthz": "getLiveness",
    "readyz": "getReadiness",
    "smart_configuration": "getSmartConfiguration",
    "fhir_metadata": "fhirCapabilities",
}
"""Route names that do not read well as they are."""


def operation_id(route: APIRoute) -> str:
    """A stable, readable camelCase id from the route's function name: ``create_patient`` →
    ``createPatient``; FHIR searches name the resource type (``fhirSearchObservation``)."""
    name = _OPERATION_IDS.get(route.name, route.name)
    if (match := re.fullmatch(r"fhir_search_(\w+?)s", name)) is not None:
        name = f"fhir_search_{match.group(1)}"
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def api_routes(routes: Sequence[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (included := getattr(route, "original_router", None)) is not None:
            yield from api_routes(included.routes)


def _depends_on(dependant: Dependant, call: Any) -> bool:
    return dependant.call is call or any(_depends_on(sub, call) for sub in dependant.dependencies)


def finish(schema: dict[str, Any], routes: Sequence[Any]) -> dict[str, Any]:
    """Complete the generated document (see the module docstring); returns it."""
    schema["servers"] = SERVERS
    components = schema.setdefault("components", {})
    components["securitySchemes"] = {"bearerAuth": BEARER_SCHEME, "smartBackend": SMART_SCHEME}
    components["headers"] = {name: header(name, required=True) for name in _SHARED_HEADERS}
    schemas = components.setdefault("schemas", {})
    for name, model in (MANUAL_BODIES | {"Problem": Problem}).items():
        body = model.model_json_schema(ref_template=SCHEMA_REF + "{model}")
        for def_name, definition in body.pop("$defs", {}).items():
            schemas.setdefault(def_name, definition)
        schemas[name] = body
    schemas.update(RESOURCE_SCHEMAS)
    schemas.update(DOCUMENTED_SCHEMAS)
    schemas["OperationOutcome"] = OPERATION_OUTCOME
    schemas["OperationOutcomeIssue"] = OPERATION_OUTCOME_ISSUE
    for route in api_routes(routes):
        if not route.include_in_schema:  # /docs and its assets
            continue
        extra = route.openapi_extra or {}
        protected = _depends_on(route.dependant, current_principal) or "security" in extra
        uses_db = protected or _depends_on(route.dependant, get_db)
        for method in sorted(m.lower() for m in route.methods or ()):
            operation = schema["paths"][route.path_format][method]
            if protected:
                operation["security"] = _security(method, route.path_format)
            _declare_errors(route.path_format, method, operation, protected=protected, db=uses_db)
            _declare_headers(operation)
            _example(operation)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return schema


def _security(method: str, path: str) -> list[dict[str, list[str]]]:
    """An API token, or a SMART access token with the scopes the route needs (none listed
    where SMART tokens are refused: smart.access)."""
    needs = smart_access.needed(method, path)
    if needs is None:
        return [{"bearerAuth": []}]
    return [{"bearerAuth": []}, {"smartBackend": [scope.text for scope in needs]}]


def _declare_errors(
    path: str, method: str, operation: dict[str, Any], *, protected: bool, db: bool
) -> None:
    responses: dict[str, Any] = operation["responses"]
    parameters = operation.get("parameters", [])
    body = operation.get("requestBody")
    statuses = {429}
    if method in _WITH_BODY:  # RequestBodyRules: any body on these, bodiless routes too
        statuses.add(413)
        if path != FORM_PATH:
            statuses.add(415)
    if body is not None:
        statuses.add(422)
    if protected:
        statuses |= {401, 403}
    if db and path not in _NO_DATABASE:
        statuses.add(503)
    if "{" in path:
        statuses.add(404)
    if parameters:  # FastAPI's validation: FHIR answers a bad parameter with a 400
        statuses.add(400 if is_fhir_path(path) else 422)
    if any(p["name"] == "Idempotency-Key" for p in parameters):
        statuses.add(409)
    if is_fhir_path(path) and body is None:
        responses.pop("422", None)  # FastAPI's default; FHIR says 400 (see above)
    for status in sorted(statuses):
        responses.setdefault(str(status), {"description": PROBLEM_DESCRIPTIONS[status]})
    for code, response in responses.items():
        if code.isdigit() and int(code) >= 400:
            _error_content(path, int(code), response)


def _error_content(path: str, status: int, response: dict[str, Any]) -> None:
    if response.get("description") == "Validation Error":  # FastAPI's own 422
        response["description"] = PROBLEM_DESCRIPTIONS[status]
    if path == TOKEN_PATH and status in (400, 401):
        return  # OAuth 2.0 error bodies (RFC 6749 §5.2), declared by the route
    if is_fhir_path(path):
        response["content"] = {
            FHIR_MEDIA_TYPE: {"schema": {"$ref": SCHEMA_REF + "OperationOutcome"}}
        }
    else:
        response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": SCHEMA_REF + "Problem"}}}
    headers = response.setdefault("headers", {})
    if status in (429, 503):
        headers["Retry-After"] = {"$ref": HEADER_REF + "Retry-After"}
    if status == 401 and path != TOKEN_PATH:
        headers["WWW-Authenticate"] = {"$ref": HEADER_REF + "WWW-Authenticate"}
    if status == 403:  # a SMART access token's insufficient_scope (RFC 6750 §3.1)
        headers["WWW-Authenticate"] = header("WWW-Authenticate") | {
            "description": "With a SMART access token whose scopes fall short: `Bearer "
            'realm="kap-outcomes", error="insufficient_scope", scope="…"`.'
        }


def _example(operation: dict[str, Any]) -> None:
    for media in operation.get("requestBody", {}).get("content", {}).values():
        schema = media.get("schema", {})
        refs = [choice.get("$ref", "") for choice in [schema, *schema.get("anyOf", [])]]
        name = next((ref.rpartition("/")[2] for ref in refs if ref), "")
        if name in REQUEST_EXAMPLES:
            media["example"] = REQUEST_EXAMPLES[name]


def _declare_headers(operation: dict[str, Any]) -> None:
    idempotent = any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))
    for status, response in operation["responses"].items():
        headers: dict[str, Any] = response.setdefault("headers", {})
        headers["X-Request-ID"] = {"$ref": HEADER_REF + "X-Request-ID"}
        for media in response.get("content", {}).values():
            if "$ref" in media.get("schema", {}):  # FastAPI merges its own type beside it
                media["schema"] = {"$ref": media["schema"]["$ref"]}
        if idempotent and status.startswith("2"):
            headers["Idempotent-Replayed"] = header("Idempotent-Replayed")
        if status == "201":  # every 201 names what it created
            headers["Location"] = header("Location", required=True)
