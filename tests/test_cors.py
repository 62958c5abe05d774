"""CORS for browser dashboards: exactly the request headers this API reads may be sent, and the
response headers a client needs may be read (issue #10). The real browser test is
tests/test_browser_cors.py; these check the answers header by header."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kap_outcomes.app import create_app
from kap_outcomes.config import Settings

from .conftest import TEST_SIGNING_KEY

DASHBOARD = "https://dash.example"
# the lists, written out here rather than imported from the code
MAY_SEND = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-Match",
    "If-None-Exist",
    "Prefer",
    "X-Request-ID",
]
MAY_READ = ["Location", "ETag", "Retry-After", "X-Request-ID", "Idempotent-Replayed"]


def _client(database_url: str, **overrides: Any) -> TestClient:
    settings = Settings(
        database_url=database_url,
        environment="test",
        signing_key=TEST_SIGNING_KEY,
        cors_origins=[DASHBOARD],
        **({"rate_limit_per_minute": 0, "failed_auth_per_minute": 0} | overrides),
    )
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture
def browser_api(database_url: str) -> Iterator[TestClient]:
    with _client(database_url) as client:
        yield client


def _lower(values: str) -> set[str]:
    return {v.strip().lower() for v in values.split(",") if v.strip()}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/patients/p1/assessments"),
        ("POST", "/v1/assessments/a1/amend"),
        ("POST", "/fhir/R4/QuestionnaireResponse"),
        ("PUT", "/v1/policy"),
        ("DELETE", "/v1/tokens/t1"),
    ],
)
def test_preflight_allows_every_header_the_api_reads(browser_api, method, path):
    resp = browser_api.options(
        path,
        headers={
            "Origin": DASHBOARD,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": ",".join(h.lower() for h in MAY_SEND),
        },
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["access-control-allow-origin"] == DASHBOARD
    assert method in _lower(resp.headers["access-control-allow-methods"]) | {
        m.upper() for m in _lower(resp.headers["access-control-allow-methods"])
    }
    assert {h.lower() for h in MAY_SEND} <= _lower(resp.headers["access-control-allow-headers"])


def test_responses_expose_the_headers_a_client_needs(browser_api):
    resp = browser_api.get("/healthz", headers={"Origin": DASHBOARD})
    assert resp.headers["access-control-allow-origin"] == DASHBOARD
    assert {h.lower() for h in MAY_READ} <= _lower(resp.headers["access-control-expose-headers"])
    # bearer tokens, not cookies: a page of another site can never ride on a session
    assert "access-control-allow-credentials" not in resp.headers


def test_an_origin_not_listed_gets_no_cors_answer(browser_api):
    preflight = browser_api.options(
        "/v1/patients",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    simple = browser_api.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


def test_the_edge_throttle_answer_is_readable_by_the_page(database_url):
    """A 429 of the failed-authentication throttle comes from the edge layer, before the app:
    a page must still be allowed to read it and its Retry-After."""
    with _client(database_url, failed_auth_per_minute=2) as client:
        bad = {"Origin": DASHBOARD, "Authorization": "Bearer kap_" + "Z" * 43}
        assert [client.get("/v1/patients", headers=bad).status_code for _ in range(2)] == [401] * 2
        throttled = client.get("/v1/patients", headers=bad)
        assert throttled.status_code == 429
        assert throttled.headers["access-control-allow-origin"] == DASHBOARD
        assert "retry-after" in _lower(throttled.headers["access-control-expose-headers"])
        assert int(throttled.headers["retry-after"]) >= 1
