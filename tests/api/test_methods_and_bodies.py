"""What the OpenAPI document promises about methods and bodies, over HTTP: an undeclared
method is a 405 that lists, in ``Allow``, every method the path takes (RFC 9110 §15.5.6),
and a body that is not even UTF-8 is malformed JSON like any other (422, never a 400)."""

from __future__ import annotations

from typing import Any

import pytest

from kap_outcomes.auth.models import Role


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        # two routes share each of these paths: Allow names both methods
        ("DELETE", "/v1/patients", "GET, POST"),
        ("OPTIONS", "/v1/tokens", "GET, POST"),
        ("PATCH", "/v1/policy", "GET, PUT"),
        ("PUT", "/v1/patients/p-1/courses", "GET, POST"),
        ("DELETE", "/v1/patients/p-1", "GET, PATCH"),
    ],
)
def test_undeclared_method_is_405_with_allow(
    tenant: Any, method: str, path: str, allow: str
) -> None:
    resp = tenant.client.request(method, path, headers=tenant.headers())
    assert resp.status_code == 405
    assert resp.headers["allow"] == allow
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["status"] == 405


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("TRACE", "/fhir/R4/metadata", "GET"),
        ("DELETE", "/fhir/R4/QuestionnaireResponse", "GET, POST"),
        ("PUT", "/fhir/R4/Patient/p-1", "GET"),
    ],
)
def test_undeclared_method_on_fhir_is_405_with_allow_and_an_outcome(
    tenant: Any, method: str, path: str, allow: str
) -> None:
    resp = tenant.client.request(method, path, headers=tenant.headers())
    assert resp.status_code == 405
    assert resp.headers["allow"] == allow
    assert resp.headers["content-type"] == "application/fhir+json"
    assert resp.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    "path", ["/v1/patients", "/v1/tokens", "/v1/alerts/a-1/acknowledge", "/v1/clients"]
)
def test_a_body_that_is_not_utf8_is_malformed_json(tenant: Any, path: str) -> None:
    resp = tenant.client.post(
        path,
        content=b"\xff\xfe{",
        headers=tenant.headers(Role.admin) | {"Content-Type": "application/json"},
    )
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["errors"] == [{"detail": "malformed JSON", "pointer": ""}]
