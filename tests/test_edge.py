"""Request ids, the access log, security headers, CORS and the abuse limits."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from kap_outcomes.app import create_app
from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import ensure_organisation, issue_token
from kap_outcomes.config import Settings

from .conftest import TEST_SIGNING_KEY


def _client(database_url: str, **overrides: Any) -> TestClient:
    settings = Settings(
        database_url=database_url,
        environment="test",
        signing_key=TEST_SIGNING_KEY,
        **({"rate_limit_per_minute": 0, "failed_auth_per_minute": 0} | overrides),
    )
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture
def token(db) -> str:
    def create(conn: Any) -> str:
        org = ensure_organisation(conn, "edge-tests")
        return issue_token(conn, organisation_id=org, role=Role.clinician)[1]

    return str(db.run_write(create))


@pytest.fixture
def edge(database_url: str) -> Iterator[TestClient]:
    with _client(database_url) as client:
        yield client


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_request_ids_are_echoed_or_made(edge, token):
    given = edge.get("/v1/patients", headers=_auth(token) | {"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = edge.get("/v1/patients", headers=_auth(token) | {"X-Request-ID": "bad id!"})
    assert made.headers["x-request-id"] not in ("", "bad id!")
    assert len(made.headers["x-request-id"]) == 16


def test_security_headers_on_every_response(edge, token):
    for resp in (edge.get("/v1/patients", headers=_auth(token)), edge.get("/v1/patients")):
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["cache-control"] == "no-store"
        assert resp.headers["x-frame-options"] == "DENY"
        assert "default-src 'none'" in resp.headers["content-security-policy"]


def test_one_log_line_per_request_without_secrets_or_identifiers(edge, token, caplog):
    with caplog.at_level(logging.INFO, logger="kap_outcomes"):
        created = edge.post(
            "/v1/patients",
            json={"external_id": "MRN-SECRET-4711"},
            headers=_auth(token) | {"X-Request-ID": "req-1"},
        )
        pid = created.json()["id"]
        edge.post(
            f"/v1/patients/{pid}/assessments",
            json={
                "instrument": "phq9",
                "items": [3, 3, 3, 3, 3, 3, 3, 3, 2],
                "administered_at": "2026-03-02T15:04:05Z",
            },
            headers=_auth(token),
        )
        edge.get("/v1/patients", headers=_auth("kap_" + "Z" * 43))
        lines: list[dict[str, Any]] = []
        deadline = time.monotonic() + 5
        while len(lines) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # the access log is written in batches (AccessLog.FLUSH_SECONDS)
            access = [r for r in caplog.records if r.name == "kap_outcomes.access"]
            lines = [orjson.loads(x) for r in access for x in r.getMessage().splitlines()]
    assert [(x["method"], x["route"], x["status"]) for x in lines] == [
        ("POST", "/v1/patients", 201),
        ("POST", "/v1/patients/{patient_id}/assessments", 201),
        ("GET", "/v1/patients", 401),
    ]
    assert lines[0]["request_id"] == "req-1" and lines[0]["duration_ms"] >= 0
    everything = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (token, "Z" * 43, "MRN-SECRET-4711", pid, "[3, 3, 3"):
        assert secret not in everything


def test_a_token_over_its_rate_is_429_with_retry_after(database_url, token, db):
    other = db.run_write(
        lambda c: issue_token(
            c, organisation_id=ensure_organisation(c, "edge-tests"), role=Role.clinician
        )[1]
    )
    with _client(database_url, rate_limit_per_minute=3) as client:
        codes = [client.get("/v1/patients", headers=_auth(token)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = client.get("/v1/patients", headers=_auth(token))
        assert limited.headers["content-type"] == "application/problem+json"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert client.get("/v1/patients", headers=_auth(other)).status_code == 200


def test_failed_authentication_is_throttled_per_address(database_url, token):
    with _client(database_url, failed_auth_per_minute=3) as client:
        bad = _auth("kap_" + "Q" * 43)
        assert [client.get("/v1/patients", headers=bad).status_code for _ in range(3)] == [401] * 3
        throttled = client.get("/v1/patients", headers=_auth(token))
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) >= 1


def test_cors_only_for_listed_origins(database_url):
    with _client(database_url, cors_origins=["https://dash.example"]) as client:
        preflight = {
            "Origin": "https://dash.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        }
        ok = client.options("/v1/patients", headers=preflight)
        assert ok.headers["access-control-allow-origin"] == "https://dash.example"
        other = client.options(
            "/v1/patients", headers=preflight | {"Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers


def test_wrong_enrollment_codes_count_as_failed_authentication(database_url):
    with _client(database_url, failed_auth_per_minute=3) as client:
        for _ in range(3):
            wrong = client.post("/v1/auth/enroll", json={"code": "ABCD-EFGH-JKMN-PQRS"})
            assert wrong.status_code == 400
        assert (
            client.post("/v1/auth/enroll", json={"code": "ABCD-EFGH-JKMN-PQRS"}).status_code == 429
        )


def test_the_rate_limit_counts_authenticated_requests_per_principal(database_url, token):
    with _client(database_url, rate_limit_per_minute=3) as client:
        forged = _auth("kap_" + "F" * 43)
        assert [client.get("/v1/patients", headers=forged).status_code for _ in range(5)] == [
            401
        ] * 5
        codes = [client.get("/v1/patients", headers=_auth(token)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
