"""SMART Backend Services over real HTTP: the service as a process (uvicorn on 127.0.0.1, a
random port), a client whose keys are served by a real JWKS server started here (also on
127.0.0.1, admitted by ``KAP_JWKS_ALLOWED_NETWORKS``), fhirclient's discovery, key rotation
without downtime, the refresh on an unknown kid and its rate limit, and the egress refusals.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fhirclient import client as fhir_client
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient
from fhirclient.server import FHIRPermissionDeniedException

from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import ensure_organisation, issue_token
from kap_outcomes.db import Database
from kap_outcomes.fhir.capability import capability_statement
from kap_outcomes.smart.remote_keys import (
    FetchRules,
    KeySetUnavailable,
    RemoteKeySets,
    read_key_set,
)
from kap_outcomes.smart.service import JWT_BEARER
from kap_outcomes.webhooks.egress import EgressPolicy

from .api.test_smart import new_private_key, public_jwk
from .conftest import ROOT, TEST_SIGNING_KEY
from .processes import ServiceProcess, free_port, http_get, http_post, serve_in_thread, service_env
from .test_generated_clients import _require as require
from .test_generated_clients import _run as run
from .toolcache import npm_modules

# one xdist worker runs the module: its module fixture starts the server once
pytestmark = pytest.mark.xdist_group("test_smart_http")

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"

REFRESH_INTERVAL_S = 0.5
"""The service's ``KAP_JWKS_REFRESH_INTERVAL_S`` here: short, so that the rotation test waits
little. No step depends on the machine being fast: a wait for the interval to pass waits for
that condition (`_past_interval`), and a step that must fall inside an interval measures its
own time and is tried again when the machine was too slow for it."""


class JwksServer:
    """Serves ``keys`` at ``/jwks.json`` with ``cache_control``; counts the GETs. Other paths:
    ``/moved`` redirects to it, ``/huge`` is 100 KiB, ``/slow`` answers after 3 s,
    ``/text`` is not JSON. ``times`` holds when each GET arrived (``time.monotonic()``, the
    machine's clock, which the service reads too)."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.cache_control = "max-age=3600"
        self.hits: list[str] = []
        self.times: list[float] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.times.append(time.monotonic())
                server.hits.append(self.path)
                if self.path == "/moved":
                    self.send_response(302)
                    self.send_header("Location", f"{server.url}/jwks.json")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path == "/slow":
                    time.sleep(3)
                body = json.dumps({"keys": server.keys}).encode()
                if self.path == "/huge":
                    body = json.dumps({"keys": server.keys, "pad": "x" * 100_000}).encode()
                elif self.path == "/text":
                    body = b"<html>not a key set</html>"
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/jwk-set+json")
                    self.send_header("Cache-Control", server.cache_control)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the fetcher gave up (the timeout case)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = serve_in_thread(self.httpd)

    @property
    def fetches(self) -> int:
        return self.hits.count("/jwks.json")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def service(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """One process for the module's three tests: each registers a client of its own, and the
    key sets it fetches are cached per client."""
    port = free_port()
    env = service_env(database_url) | {
        "KAP_ENVIRONMENT": "test",
        "KAP_SIGNING_KEY": TEST_SIGNING_KEY,
        "KAP_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "KAP_WORKER_EMBEDDED": "false",  # other tests' webhooks are not this process's work
        "KAP_JWKS_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        "KAP_JWKS_REFRESH_INTERVAL_S": str(REFRESH_INTERVAL_S),
        "KAP_JWKS_CACHE_MIN_S": "0",
    }
    process = ServiceProcess(env, tmp_path_factory.mktemp("smart-http"), port=port)
    yield process
    process.stop()


def _admin(db: Database) -> str:
    def make(conn: Any) -> str:
        org = ensure_organisation(conn, f"smart-http-{uuid.uuid4().hex[:8]}")
        return issue_token(conn, organisation_id=org, role=Role.admin)[1]

    return db.run_write(make)


class HttpBackend:
    """A backend that signs with whichever of its keys it is told to."""

    def __init__(self, base: str, client_id: str) -> None:
        self.base = base
        self.client_id = client_id

    def assertion(self, key: Any, kid: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": f"{self.base}/oauth/token",
            "exp": now + 240,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, key, algorithm="ES384", headers={"kid": kid})

    def token(self, key: Any, kid: str, scope: str = "system/Observation.rs") -> httpx.Response:
        return http_post(
            f"{self.base}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "scope": scope,
                "client_assertion_type": JWT_BEARER,
                "client_assertion": self.assertion(key, kid),
            },
            timeout=10,
        )


def _past_interval(jwks: JwksServer) -> None:
    """Until the refresh interval has passed since the service's last fetch. The service
    starts an interval when it starts a fetch, before the GET arrives here: so once the
    interval has passed since the last GET that arrived, it has passed for the service."""
    time.sleep(max(jwks.times[-1] + REFRESH_INTERVAL_S - time.monotonic(), 0) + 0.01)


def test_jwks_uri_client_rotates_keys_without_downtime(
    service: ServiceProcess, jwks_server: JwksServer, db: Database
) -> None:
    base = service.base
    admin = {"Authorization": f"Bearer {_admin(db)}"}
    old = new_private_key("ES384")
    jwks_server.keys = [public_jwk(old, "old")]

    registered = http_post(
        f"{base}/v1/clients",
        headers=admin,
        json={
            "name": "EHR by jwks_uri",
            "jwks_uri": f"{jwks_server.url}/jwks.json",
            "scope": "system/Observation.rs system/Patient.rs",
        },
    )
    assert registered.status_code == 201, registered.text
    assert registered.json()["jwks_uri"] == f"{jwks_server.url}/jwks.json"
    assert registered.json()["key_ids"] == []
    assert jwks_server.fetches == 1  # checked once at registration
    backend = HttpBackend(base, registered.json()["client_id"])

    first = backend.token(old, "old")
    assert first.status_code == 200, first.text
    assert jwks_server.fetches == 2
    access_old = {"Authorization": f"Bearer {first.json()['access_token']}"}
    assert http_get(f"{base}/fhir/R4/Observation", headers=access_old).status_code == 200
    # cached (max-age=3600): the next assertion costs no fetch
    assert backend.token(old, "old").status_code == 200
    assert jwks_server.fetches == 2

    # an unknown kid once the refresh interval has passed fetches the set again and starts
    # a new interval; the backend then publishes its new key beside the old one and uses it
    # at once: a try inside that interval fetches nothing, so the kid is not known yet. The
    # service starts the interval after the request that fetched was sent (`sent`), so a try
    # answered before `sent` + the interval fell inside it; on a machine too slow for that,
    # the step is tried again with another new key.
    for attempt in range(5):
        new, kid = new_private_key("ES384"), f"new-{attempt}"
        _past_interval(jwks_server)
        before = jwks_server.fetches
        sent = time.monotonic()
        assert backend.token(new, kid).status_code == 401  # not published yet
        assert jwks_server.fetches == before + 1
        jwks_server.keys = [*jwks_server.keys, public_jwk(new, kid)]
        too_soon = backend.token(new, kid)
        if time.monotonic() - sent < REFRESH_INTERVAL_S:
            break
    else:
        pytest.fail("each of five tries took longer than the refresh interval")
    assert too_soon.status_code == 401 and too_soon.json()["error"] == "invalid_client"
    assert jwks_server.fetches == before + 1
    _past_interval(jwks_server)
    with_new = backend.token(new, kid)
    assert with_new.status_code == 200, with_new.text  # the unknown kid fetched the set again
    assert jwks_server.fetches == before + 2
    assert backend.token(old, "old").status_code == 200  # both keys work during the overlap
    assert jwks_server.fetches == before + 2

    # a flood of made-up kids costs at most one fetch per interval
    _past_interval(jwks_server)
    started, before = time.monotonic(), jwks_server.fetches
    for _ in range(20):
        assert backend.token(new, f"made-up-{uuid.uuid4()}").status_code == 401
    elapsed = time.monotonic() - started
    assert 1 <= jwks_server.fetches - before <= 1 + int(elapsed / REFRESH_INTERVAL_S), elapsed

    # the old key is withdrawn: from the next fetch on it signs nothing
    jwks_server.keys = [public_jwk(new, kid)]
    _past_interval(jwks_server)
    before = jwks_server.fetches
    assert backend.token(new, "another-unknown").status_code == 401  # refreshes the set
    assert jwks_server.fetches == before + 1
    refused = backend.token(old, "old")
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert backend.token(new, kid).status_code == 200
    # an access token issued before the rotation runs out on its own (at most 5 minutes)
    assert http_get(f"{base}/fhir/R4/Observation", headers=access_old).status_code == 200


def test_fhirclient_discovers_the_token_endpoint_and_scopes_hold(
    service: ServiceProcess, db: Database
) -> None:
    """fhirclient 4 reads SMART's oauth-uris extension from the CapabilityStatement, asks for
    a token with a client assertion, and then meets the scope rules."""
    base = service.base
    admin = {"Authorization": f"Bearer {_admin(db)}"}
    key = new_private_key("ES384")
    registered = http_post(
        f"{base}/v1/clients",
        headers=admin,
        json={
            "name": "fhirclient",
            "jwks": {"keys": [public_jwk(key, "k1")]},
            "scope": "system/*.rs",
        },
    )
    assert registered.status_code == 201, registered.text
    patient = http_post(
        f"{base}/v1/patients", headers=admin, json={"external_id": f"fc-{uuid.uuid4()}"}
    )
    assert patient.status_code == 201, patient.text
    patient_id = patient.json()["id"]

    discovery = http_get(f"{base}/fhir/R4/.well-known/smart-configuration").json()
    assert discovery["token_endpoint"] == f"{base}/oauth/token"

    backend = HttpBackend(base, registered.json()["client_id"])
    smart = fhir_client.FHIRClient(
        settings={
            "app_id": backend.client_id,
            "api_base": f"{base}/fhir/R4",
            "jwt_token": backend.assertion(key, "k1"),
            "scope": "system/Observation.rs",
        }
    )
    smart.wants_patient = False  # a backend service: no launch/patient scope
    smart.prepare()
    assert smart.server.auth is not None and smart.server.auth.auth_type == "oauth2"
    assert smart.server.auth._token_uri == f"{base}/oauth/token"
    smart.server.authorize()
    assert smart.server.ready

    bundles = list(Observation.where({"patient": patient_id}).perform_iter(smart.server))
    assert [b.type for b in bundles] == ["searchset"]
    with pytest.raises(FHIRPermissionDeniedException):
        Patient.read(patient_id, smart.server)  # Observation.rs does not read patients
    created = http_post(
        f"{base}/v1/patients",
        headers={"Authorization": f"Bearer {smart.server.auth.access_token}"},
        json={"external_id": f"fc-{uuid.uuid4()}"},
    )
    assert created.status_code == 403
    assert 'error="insufficient_scope"' in created.headers["www-authenticate"]


def test_fhir_kit_client_discovers_the_token_endpoint_and_scopes_hold(
    service: ServiceProcess, db: Database, tmp_path: Path
) -> None:
    """fhir-kit-client (pinned in clients/fhir-kit) finds the token endpoint by SMART
    discovery, and a ``system/Observation.rs`` token searches Observations but cannot read
    a Patient. Without node and npm it is skipped locally and fails in CI. The pinned
    packages are installed by ``npm ci`` once per lock file (tests/toolcache.py); the
    script is today's."""
    require("node", "npm")
    package = ROOT / "clients" / "fhir-kit"
    installed = npm_modules("fhir-kit", package)
    work = tmp_path / "fhir-kit"
    work.mkdir()
    shutil.copy(package / "discover.mjs", work / "discover.mjs")
    (work / "node_modules").symlink_to(installed, target_is_directory=True)

    base = service.base
    admin = {"Authorization": f"Bearer {_admin(db)}"}
    key = new_private_key("ES384")
    registered = http_post(
        f"{base}/v1/clients",
        headers=admin,
        json={
            "name": "fhir-kit",
            "jwks": {"keys": [public_jwk(key, "k1")]},
            "scope": "system/*.rs",
        },
    )
    assert registered.status_code == 201, registered.text
    patient = http_post(
        f"{base}/v1/patients", headers=admin, json={"external_id": f"fk-{uuid.uuid4()}"}
    )
    token = HttpBackend(base, registered.json()["client_id"]).token(key, "k1")
    assert token.status_code == 200, token.text

    said = json.loads(
        run(
            "node",
            "discover.mjs",
            f"{base}/fhir/R4",
            token.json()["access_token"],
            patient.json()["id"],
            cwd=work,
        )
    )
    assert said["tokenUrl"] == f"{base}/oauth/token"
    assert said["capabilityUris"]["token"] == f"{base}/oauth/token"
    assert "SMART-on-FHIR" in said["services"]
    assert said["searchType"] == "searchset"
    assert (said["readStatus"], said["readIssue"]) == (403, "forbidden")


def test_capability_statement_security() -> None:
    """The CapabilityStatement's rest.security as SMART App Launch (conformance) describes."""
    security = capability_statement("https://kap.example/fhir/R4")["rest"][0]["security"]
    codes = [c["code"] for s in security["service"] for c in s["coding"]]
    assert "SMART-on-FHIR" in codes
    (uris,) = [e for e in security["extension"] if e["url"] == OAUTH_URIS]
    by_name = {e["url"]: e["valueUri"] for e in uris["extension"]}
    assert by_name["token"] == "https://kap.example/oauth/token"
    assert by_name["register"] == "https://kap.example/v1/clients"


# --- the egress rules, at registration and at fetch time ------------------------------------


def test_a_jwks_uri_leading_to_a_refused_address_is_refused(tenant, jwks_server) -> None:
    """The suite's app admits no network for key fetches: loopback (named or literal),
    link-local (cloud metadata) and private addresses are refused, and nothing is fetched."""
    jwks_server.keys = [public_jwk(new_private_key("ES384"), "k1")]
    for uri, reason in [
        (f"{jwks_server.url}/jwks.json", "loopback"),
        (f"http://localhost:{jwks_server.port}/jwks.json", "loopback"),
        ("http://169.254.169.254/latest/meta-data/jwks", "link-local"),
        ("http://10.1.2.3/jwks.json", "private"),
        ("file:///etc/passwd", "only http and https"),
        ("https://user:pw@keys.example/jwks.json", "credentials"),
    ]:
        resp = tenant.post(
            "/v1/clients",
            {"name": "x", "jwks_uri": uri, "scope": "system/*.rs"},
            role=Role.admin,
        )
        assert resp.status_code == 422, (uri, resp.text)
        (problem,) = resp.json()["errors"]
        assert problem["pointer"] == "/jwks_uri" and reason in problem["detail"], (uri, problem)
    assert jwks_server.hits == []
    both = tenant.post(
        "/v1/clients",
        {
            "name": "x",
            "jwks": {"keys": jwks_server.keys},
            "jwks_uri": f"{jwks_server.url}/jwks.json",
            "scope": "system/*.rs",
        },
        role=Role.admin,
    )
    assert both.status_code == 422


def _rules(**kw: Any) -> FetchRules:
    values: dict[str, Any] = {
        "policy": EgressPolicy(()),
        "timeout_s": 1.0,
        "cache_min_s": 60.0,
        "cache_max_s": 86400.0,
        "refresh_interval_s": 10.0,
    }
    return FetchRules(**(values | kw))


def test_the_address_is_checked_when_fetching(jwks_server) -> None:
    """At fetch time the resolved address is checked again (a name that now leads to
    loopback is refused without a connection), and the answer must be a direct 200 with a
    small JSON key set."""
    jwks_server.keys = [public_jwk(new_private_key("ES384"), "k1")]
    refusing = RemoteKeySets(_rules())
    with pytest.raises(KeySetUnavailable, match="refused: localhost resolves to"):
        asyncio.run(refusing.fetch(f"http://localhost:{jwks_server.port}/jwks.json"))
    assert jwks_server.hits == []

    loopback = EgressPolicy((ip_network("127.0.0.0/8"),))
    allowing = RemoteKeySets(_rules(policy=loopback))
    impatient = RemoteKeySets(_rules(policy=loopback, timeout_s=0.25))  # /slow takes 3 s
    for keys, path, reason in [
        (allowing, "/moved", "HTTP 302"),  # never followed
        (allowing, "/huge", "larger than"),
        (allowing, "/text", "not JSON"),
        (impatient, "/slow", "timed out after 0.25 s"),
    ]:
        with pytest.raises(KeySetUnavailable, match=reason):
            asyncio.run(keys.fetch(f"{jwks_server.url}{path}"))
    assert jwks_server.hits == ["/moved", "/huge", "/text", "/slow"]  # no redirect followed
    keys, lifetime = asyncio.run(allowing.fetch(f"{jwks_server.url}/jwks.json"))
    assert [k["kid"] for k in keys["keys"]] == ["k1"]
    assert lifetime == 3600


@pytest.mark.parametrize(
    ("cache_control", "seconds"),
    [
        ("max-age=3600", 3600),
        ("public, max-age=120", 120),
        ("max-age=5", 60),  # below the floor
        ("max-age=9999999", 86400),  # above the ceiling
        ("no-store", 60),
        ("no-cache, max-age=600", 60),
        (None, 300),  # unsaid: 5 minutes
        ("private", 300),
    ],
)
def test_cache_lifetime_within_bounds(cache_control: str | None, seconds: float) -> None:
    assert _rules().lifetime(cache_control) == seconds


def test_unusable_keys_of_a_fetched_set_are_left_out() -> None:
    good = public_jwk(new_private_key("ES384"), "good")
    weak = public_jwk(new_private_key("RS384"), "enc") | {"use": "enc"}
    private = good | {"kid": "private", "d": "AAAA"}
    twice = good | {"x": good["x"]}
    read = read_key_set(json.dumps({"keys": [weak, private, good, twice]}).encode())
    assert [k["kid"] for k in read["keys"]] == ["good"]
    with pytest.raises(KeySetUnavailable, match="no usable"):
        read_key_set(json.dumps({"keys": [weak]}).encode())
    with pytest.raises(KeySetUnavailable, match="JWK Set"):
        read_key_set(b'{"kid": "x"}')


def test_the_cached_set_is_fetched_again_once_stale(jwks_server) -> None:
    """``max-age=120`` (within the bounds): the set is served from the cache until 120 s have
    passed, then fetched again; a kid it lacks fetches again only after the refresh
    interval (10 s here), however many assertions name one."""
    jwks_server.keys = [public_jwk(new_private_key("ES384"), "k1")]
    jwks_server.cache_control = "max-age=120"
    now = [1000.0]
    keys = RemoteKeySets(
        _rules(policy=EgressPolicy((ip_network("127.0.0.0/8"),))), clock=lambda: now[0]
    )
    uri = f"{jwks_server.url}/jwks.json"

    async def ask(kid: str) -> list[str]:
        return [k["kid"] for k in (await keys.keys_for("client-1", uri, kid))["keys"]]

    assert asyncio.run(ask("k1")) == ["k1"]
    now[0] += 119
    assert asyncio.run(ask("k1")) == ["k1"]
    assert jwks_server.fetches == 1
    now[0] += 2  # 121 s: stale
    assert asyncio.run(ask("k1")) == ["k1"]
    assert jwks_server.fetches == 2
    for step in range(9):  # unknown kids within the 10 s interval: no fetch
        now[0] += 1
        assert asyncio.run(ask(f"unknown-{step}")) == ["k1"]
    assert jwks_server.fetches == 2
    now[0] += 1.5
    assert asyncio.run(ask("unknown")) == ["k1"]
    assert jwks_server.fetches == 3
    # another URL for the same client (its registration changed) is fetched at once
    assert asyncio.run(keys.keys_for("client-1", f"{jwks_server.url}/jwks.json?v=2", "k1"))
    assert jwks_server.hits[-1] == "/jwks.json?v=2"
