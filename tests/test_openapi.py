"""The committed OpenAPI document is the app's own (regenerate: `kap-outcomes openapi`), and it
is what generated clients need (issue #10, requirement 4): error shapes, headers, enums,
examples, operation ids."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from kap_outcomes.openapi_doc import render

from .conftest import ROOT

COMMITTED = (ROOT / "openapi" / "openapi.json").read_text()
DOC: dict[str, Any] = json.loads(COMMITTED)
"""The committed document, which the first test finds equal to the one the app renders (so
the app is not rendered again in every xdist worker just to collect this module)."""
OPERATIONS = [
    (method, path, op)
    for path, ops in DOC["paths"].items()
    for method, op in ops.items()
    if method in ("get", "post", "put", "patch", "delete")
]
SCHEMAS = DOC["components"]["schemas"]


def _resolve(obj: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in obj:
        section, name = obj["$ref"].split("/")[-2:]
        obj = DOC["components"][section][name]
    return obj


def test_committed_openapi_matches_app() -> None:
    assert render() == COMMITTED, "openapi/openapi.json is stale: run `kap-outcomes openapi`"


def test_operation_ids_are_unique_readable_camel_case() -> None:
    ids = [op["operationId"] for _, _, op in OPERATIONS]
    assert len(ids) == len(set(ids))
    for op_id in ids:
        assert re.fullmatch(r"[a-z]+(?:[A-Z][a-z0-9]*)*", op_id), op_id
    # the names the issue gives as examples
    by_route = {(m, p): op["operationId"] for m, p, op in OPERATIONS}
    assert by_route["post", "/v1/patients"] == "createPatient"
    assert by_route["get", "/v1/patients/{patient_id}"] == "getPatient"
    assert by_route["get", "/v1/patients"] == "listPatients"
    assert by_route["post", "/v1/patients/{patient_id}/assessments"] == "submitAssessment"
    assert by_route["post", "/v1/assessments/{assessment_id}/amend"] == "amendAssessment"
    assert by_route["get", "/fhir/R4/Observation"] == "fhirSearchObservation"


def test_errors_are_problems_on_v1_and_operation_outcomes_on_fhir() -> None:
    for method, path, op in OPERATIONS:
        for status, response in op["responses"].items():
            if int(status) < 400 or (path == "/oauth/token" and status in ("400", "401")):
                continue  # OAuth 2.0 errors are RFC 6749's own bodies
            if path.startswith("/fhir/"):
                expected = {"application/fhir+json": {"schema": {"$ref": _ref("OperationOutcome")}}}
            else:
                expected = {"application/problem+json": {"schema": {"$ref": _ref("Problem")}}}
            assert response["content"] == expected, (method, path, status)
    problem = SCHEMAS["Problem"]
    assert {"type", "title", "status", "detail", "instance"} <= set(problem["required"])
    outcome = SCHEMAS["OperationOutcome"]["properties"]
    assert outcome["resourceType"]["const"] == "OperationOutcome"


def _ref(name: str) -> str:
    return f"#/components/schemas/{name}"


def test_errors_and_fhir_resources_are_named_schemas() -> None:
    """No inline object per status: a generator would make one throwaway model of each."""
    for method, path, op in OPERATIONS:
        for status, response in op["responses"].items():
            if int(status) < 400 and not path.startswith("/fhir/"):
                continue
            for media, content in response.get("content", {}).items():
                schema = content["schema"]
                if schema.get("type") == "array":
                    schema = schema["items"]
                assert set(schema) == {"$ref"}, (method, path, status, media)


def test_error_lists_are_per_operation() -> None:
    for method, path, op in OPERATIONS:
        statuses = set(op["responses"])
        assert "429" in statuses, (method, path)  # throttling can answer anything
        if method in ("post", "put"):
            assert "413" in statuses, (method, path)
            assert "422" in statuses, (method, path)
        if method == "get":  # plain reads have no conflicts and no preconditions
            assert not statuses & {"409", "412", "428"}, (method, path)
        if op.get("security"):
            assert {"401", "403"} <= statuses, (method, path)
        if "{" in path:
            assert "404" in statuses, (method, path)
    assert {"409", "412", "428"} <= set(
        DOC["paths"]["/v1/assessments/{assessment_id}/amend"]["post"]["responses"]
    )
    assert {"412", "428"} <= set(DOC["paths"]["/v1/policy"]["put"]["responses"])
    assert "409" in DOC["paths"]["/v1/patients"]["post"]["responses"]


def _headers(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: _resolve(spec) for name, spec in response.get("headers", {}).items()}


def test_response_headers_are_documented() -> None:
    for method, path, op in OPERATIONS:
        for status, response in op["responses"].items():
            headers = _headers(response)
            assert headers["X-Request-ID"]["required"] is True, (method, path, status)
            if status in ("429", "503"):
                assert headers["Retry-After"]["required"] is True, (method, path, status)
    paths = DOC["paths"]
    assert "ETag" in _headers(paths["/v1/assessments/{assessment_id}"]["get"]["responses"]["200"])
    assert "ETag" in _headers(paths["/v1/policy"]["get"]["responses"]["200"])
    created = _headers(paths["/fhir/R4/QuestionnaireResponse"]["post"]["responses"]["201"])
    assert {"Location", "ETag", "Idempotent-Replayed"} <= set(created)
    assert "Idempotent-Replayed" in _headers(paths["/v1/patients"]["post"]["responses"]["201"])
    assert "WWW-Authenticate" in _headers(paths["/v1/patients"]["get"]["responses"]["401"])


def _enum(schema: dict[str, Any]) -> list[str]:
    schema = _resolve(schema)
    for choice in schema.get("anyOf", []):
        if choice.get("type") != "null":
            return _enum(choice)
    if "items" in schema:
        return _enum(schema["items"])
    return sorted(schema["enum"])


@pytest.mark.parametrize(
    ("model", "field", "values"),
    [  # the closed sets of api-contract.md and clinical-rules.md
        ("AlertPublic", "level", ["emergency", "review", "urgent"]),
        ("AlertPublic", "kind", ["cssrs_risk", "phq9_item9", "safety_item_missing"]),
        ("AlertSummary", "level", ["emergency", "review", "urgent"]),
        ("AssessmentPublic", "risk", ["high", "low", "moderate", "none"]),
        (
            "AssessmentPublic",
            "severity",
            ["mild", "minimal", "moderate", "moderately_severe", "severe"],
        ),
        ("TrendPoint", "severity", ["mild", "minimal", "moderate", "moderately_severe", "severe"]),
        ("SafetyPublic", "level", ["emergency", "none", "review", "urgent"]),
        (
            "BoosterPublic",
            "status",
            ["consider_booster", "in_induction", "not_applicable", "pending", "stable", "watch"],
        ),
        (
            "SessionCreate",
            "kind",
            sorted(["intake", "preparation", "dosing", "booster", "integration", "follow_up"]),
        ),
        ("Dose", "route", ["im", "intranasal", "iv", "oral", "sublingual"]),
    ],
)
def test_closed_sets_are_enums(model: str, field: str, values: list[str]) -> None:
    assert _enum(SCHEMAS[model]["properties"][field]) == values


def test_booster_reason_codes_are_an_enum() -> None:
    codes = _enum(SCHEMAS["ReasonPublic"]["properties"]["code"])
    assert {"rise_from_nadir", "gains_half_lost", "relapse_confirmed", "no_response"} <= set(codes)


def test_policy_body_is_typed_and_if_match_is_spelled_as_such() -> None:
    put = DOC["paths"]["/v1/policy"]["put"]
    schema = put["requestBody"]["content"]["application/json"]["schema"]
    typed = _resolve(schema)
    assert set(typed["properties"]) == set(SCHEMAS["PolicyDocument"]["properties"])
    assert typed["additionalProperties"] is False
    for method, path in [
        ("put", "/v1/policy"),
        ("post", "/v1/assessments/{assessment_id}/amend"),
        ("post", "/v1/assessments/{assessment_id}/retract"),
    ]:
        names = [p["name"] for p in DOC["paths"][path][method]["parameters"] if p["in"] == "header"]
        assert "If-Match" in names, (method, path)


def test_every_request_body_has_an_example_and_there_are_servers() -> None:
    assert DOC["servers"]
    for method, path, op in OPERATIONS:
        for media, content in op.get("requestBody", {}).get("content", {}).items():
            schema = _resolve(content["schema"])
            assert content.get("example") or content.get("examples") or schema.get("examples"), (
                method,
                path,
                media,
            )


def test_idempotency_key_retention_is_the_same_in_spec_and_readme() -> None:
    """The README (reliability section) and the header's description name the same hours."""
    readme = (ROOT / "README.md").read_text()
    said = re.search(r"kept (\d+) hours", readme)
    assert said is not None
    param = next(
        p
        for p in DOC["paths"]["/v1/patients"]["post"]["parameters"]
        if p["name"] == "Idempotency-Key"
    )
    assert f"kept {said.group(1)} hours" in param["description"]
