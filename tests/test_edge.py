"""Request ids, the access log, security headers, CORS and the abuse limits."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from pydantic_settings.exceptions import SettingsError

from kap_outcomes.app import create_app
from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import ensure_organisation, issue_token
from kap_outcomes.config import Settings
from kap_outcomes.edge import client_key
from kap_outcomes.smart.service import JWT_BEARER

from .api.test_smart import Backend, new_private_key
from .conftest import TEST_SIGNING_KEY


def _client(database_url: str, **overrides: Any) -> TestClient:
    defaults = {"environment": "test", "rate_limit_per_minute": 0, "failed_auth_per_minute": 0}
    settings = Settings(
        database_url=database_url, signing_key=TEST_SIGNING_KEY, **(defaults | overrides)
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
        throttled = client.get("/v1/patients", headers=bad)
        assert throttled.status_code == 429
        assert throttled.headers["content-type"] == "application/problem+json"
        assert 1 <= int(throttled.headers["retry-after"]) <= 60
        assert client.get("/v1/patients").status_code == 429  # no credential at all
        fhir = client.get("/fhir/R4/Patient", headers=bad)
        assert fhir.status_code == 429
        assert fhir.headers["content-type"].startswith("application/fhir+json")
        assert fhir.json()["resourceType"] == "OperationOutcome"


def test_a_valid_credential_is_served_from_a_throttled_address(database_url, token):
    """The throttle refuses failed attempts only: whoever has a valid token is served, and
    the probes of the orchestrator are never throttled (issue #9, rule 3)."""
    with _client(database_url, failed_auth_per_minute=3) as client:
        bad = _auth("kap_" + "Q" * 43)
        for _ in range(4):
            client.get("/v1/patients", headers=bad)
        assert client.get("/v1/patients", headers=bad).status_code == 429
        assert client.get("/v1/patients", headers=_auth(token)).status_code == 200
        assert client.get("/fhir/R4/Patient/unknown", headers=_auth(token)).status_code == 404
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/v1/patients", headers=bad).status_code == 429  # still throttled


def test_a_valid_enrollment_code_works_from_a_throttled_address(database_url, tenant):
    pid = tenant.patient()
    issued = tenant.client.post(f"/v1/patients/{pid}/enrollments", headers=tenant.headers())
    assert issued.status_code == 201, issued.text
    with _client(database_url, failed_auth_per_minute=3) as client:
        for _ in range(3):
            wrong = client.post("/v1/auth/enroll", json={"code": "ABCD-EFGH-JKMN-PQRS"})
            assert wrong.status_code == 400
        again = client.post("/v1/auth/enroll", json={"code": "ABCD-EFGH-JKMN-PQRS"})
        assert again.status_code == 429
        enrolled = client.post("/v1/auth/enroll", json={"code": issued.json()["code"]})
        assert enrolled.status_code == 201, enrolled.text


def test_a_backend_with_a_valid_assertion_gets_its_token_from_a_throttled_address(
    database_url, tenant
):
    backend = Backend(tenant)
    with _client(database_url, failed_auth_per_minute=2) as client:

        def token_request(assertion: str) -> Any:
            form = {
                "grant_type": "client_credentials",
                "scope": "system/Patient.rs",
                "client_assertion_type": JWT_BEARER,
                "client_assertion": assertion,
            }
            return client.post("/oauth/token", data=form)

        forged = backend.assertion(key=new_private_key(backend.algorithm))
        assert [token_request(forged).status_code for _ in range(3)] == [401, 401, 429]
        granted = token_request(backend.assertion())
        assert granted.status_code == 200, granted.text
        access = _auth(granted.json()["access_token"])
        assert client.get("/v1/patients", headers=access).status_code == 200


def _failures_until_throttled(client, forwarded_for: str | None) -> list[int]:
    headers = _auth("kap_" + "X" * 43)
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return [client.get("/v1/patients", headers=headers).status_code for _ in range(3)]


# Addresses from the documentation ranges (RFC 5737, RFC 3849): only ever header values here.
CLIENT_A, CLIENT_B = "198.51.100.7", "203.0.113.9"


def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(database_url):
    peer = ("127.0.0.1", 50000)
    settings = {"failed_auth_per_minute": 2}
    with TestClient(
        create_app(
            Settings(
                database_url=database_url,
                environment="test",
                signing_key=TEST_SIGNING_KEY,
                rate_limit_per_minute=0,
                **settings,
            )
        ),
        client=peer,
    ) as client:
        # a client cannot escape its throttle by naming other addresses
        assert _failures_until_throttled(client, CLIENT_A) == [401, 401, 429]
        assert _failures_until_throttled(client, CLIENT_B) == [429] * 3
    with TestClient(
        create_app(
            Settings(
                database_url=database_url,
                environment="test",
                signing_key=TEST_SIGNING_KEY,
                rate_limit_per_minute=0,
                trusted_proxies=["10.0.0.0/8"],
                **settings,
            )
        ),
        client=peer,
    ) as client:  # the peer is not in the list: its header is not believed either
        assert _failures_until_throttled(client, CLIENT_A) == [401, 401, 429]
        assert _failures_until_throttled(client, CLIENT_B) == [429] * 3


def test_behind_a_trusted_proxy_each_client_has_its_own_throttle(database_url):
    app = create_app(
        Settings(
            database_url=database_url,
            environment="test",
            signing_key=TEST_SIGNING_KEY,
            rate_limit_per_minute=0,
            failed_auth_per_minute=2,
            trusted_proxies=["127.0.0.0/8", "::1/128"],
        )
    )
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        assert _failures_until_throttled(client, CLIENT_A) == [401, 401, 429]
        # another client behind the same proxy is not throttled for the first one's failures
        assert _failures_until_throttled(client, CLIENT_B) == [401, 401, 429]
        # a client that prepends a forged address is still itself (right to left, the first
        # address not of a trusted proxy), also through a chain of trusted proxies
        assert _failures_until_throttled(client, f"192.0.2.1, {CLIENT_A}") == [429] * 3
        assert _failures_until_throttled(client, f"192.0.2.2, {CLIENT_B}, 127.0.0.2") == [429] * 3
        # the proxy's own requests (no header) count against the proxy
        assert _failures_until_throttled(client, None) == [401, 401, 429]


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


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("127.0.0.1", [], "127.0.0.1"),
        ("127.0.0.1", ["198.51.100.7"], "198.51.100.7"),
        ("127.0.0.1", ["198.51.100.7:4711"], "198.51.100.7"),
        ("127.0.0.1", ["192.0.2.1, 198.51.100.7"], "198.51.100.7"),
        ("127.0.0.1", ["192.0.2.1", "198.51.100.7, 127.0.0.5"], "198.51.100.7"),
        ("127.0.0.1", ["127.0.0.9, 127.0.0.5"], "127.0.0.9"),  # all trusted: the first
        ("127.0.0.1", ["198.51.100.7, not-an-address"], "127.0.0.1"),  # stop at garbage
        ("127.0.0.1", ["::ffff:198.51.100.7"], "198.51.100.7"),
        ("127.0.0.1", ["[2001:db8:1:2:aaaa::1]:443"], "2001:db8:1:2::/64"),
        ("127.0.0.1", ["2001:db8:1:2:bbbb::9"], "2001:db8:1:2::/64"),  # same /64, same key
        ("198.51.100.20", ["192.0.2.1"], "198.51.100.20"),  # untrusted peer: header ignored
        ("2001:db8:9::1", [], "2001:db8:9::/64"),
        ("testclient", ["192.0.2.1"], "testclient"),
    ],
)
def test_the_client_address_behind_proxies(peer, forwarded, expected):
    scope = {
        "client": (peer, 50000),
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded],
    }
    proxies = tuple(ipaddress.ip_network(n) for n in ("127.0.0.0/8", "::1/128"))
    assert client_key(scope, proxies) == expected.encode()


def test_trusted_proxies_must_be_a_json_list_of_networks(monkeypatch):
    monkeypatch.setenv("KAP_TRUSTED_PROXIES", '["10.0.0.0/8", "2001:db8::/32"]')
    assert [str(n) for n in Settings().trusted_proxies] == ["10.0.0.0/8", "2001:db8::/32"]
    for wrong in ('["10.0.0.1/8"]', '["proxy.internal"]', "10.0.0.0/8"):
        monkeypatch.setenv("KAP_TRUSTED_PROXIES", wrong)
        with pytest.raises((ValidationError, SettingsError)):  # the service does not start
            Settings()


DOCS = ("/docs", "/docs/oauth2-redirect", "/docs/assets/swagger-ui.css", "/openapi.json")


@pytest.mark.parametrize(
    ("environment", "api_docs", "served"),
    [
        ("production", None, False),  # off unless asked for
        ("production", True, True),
        ("test", None, True),
        ("development", False, False),
    ],
)
def test_the_api_docs_can_be_switched_off(database_url, environment, api_docs, served):
    overrides: dict[str, Any] = {"environment": environment}
    if environment == "production":
        overrides["public_base_url"] = "https://outcomes.example.org"
    if api_docs is not None:
        overrides["api_docs"] = api_docs
    with _client(database_url, **overrides) as client:
        codes = {path: client.get(path).status_code for path in DOCS}
        assert codes == {path: 200 if served else 404 for path in DOCS}
        assert client.get("/redoc").status_code == 404  # never offered (it needs a CDN)
        assert client.get("/healthz").status_code == 200
