"""The edge layer's refusals on /fhir are OperationOutcomes too (429 throttled)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from kap_outcomes.app import create_app
from kap_outcomes.auth.models import Role
from kap_outcomes.config import Settings
from tests.conftest import TEST_SIGNING_KEY

from .conformance import check


def test_a_throttled_fhir_request_is_an_operation_outcome(database_url: str, tenant: Any) -> None:
    settings = Settings(
        database_url=database_url,
        environment="test",
        signing_key=TEST_SIGNING_KEY,
        rate_limit_per_minute=1,
        failed_auth_per_minute=0,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        headers = tenant.headers(Role.clinician)
        first = client.get("/fhir/R4/Questionnaire/phq-9", headers=headers)
        second = client.get("/fhir/R4/Questionnaire/phq-9", headers=headers)
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.headers["content-type"].startswith("application/fhir+json")
    assert second.headers["Retry-After"]
    assert check(second.json())["issue"][0]["code"] == "throttled"
