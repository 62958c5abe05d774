"""Links come from configuration, never from the Host header (issue #9, rule 9).

Every absolute URL the service emits (``Location``, Bundle links, ``fullUrl``, the
CapabilityStatement, SMART discovery, the token audience) is built from
``KAP_PUBLIC_BASE_URL``; a client's ``Host`` or ``X-Forwarded-*`` headers never reach one.
Production refuses to start while the address is the default.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from kap_outcomes.app import create_app
from kap_outcomes.auth.models import Role
from kap_outcomes.config import Settings

from .conftest import PG_URL, TEST_SIGNING_KEY, Tenant
from .fhir.forms import us_core_phq9
from .processes import ServiceProcess, finish, free_port, http_get, start_cli

PUBLIC = "https://outcomes.example.org/kap"
FHIR_BASE = PUBLIC + "/fhir/R4"
HOSTILE = {
    "Host": "evil.example",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "gopher",
    "X-Forwarded-Prefix": "/evil",
    "Forwarded": "host=evil.example;proto=gopher",
}


@pytest.fixture(scope="module")
def public(settings: Settings) -> Iterator[TestClient]:
    configured = settings.model_copy(update={"public_base_url": PUBLIC + "/"})
    with TestClient(create_app(configured), raise_server_exceptions=False) as c:
        yield c


def untouched(resp: Any) -> Any:
    """Nothing the client sent in its host headers comes back, anywhere in the answer."""
    seen = resp.text + repr(sorted(resp.headers.items()))
    assert "evil" not in seen and "gopher" not in seen, seen
    assert "testserver" not in seen, seen
    return resp


def test_fhir_links_use_the_configured_base(public: TestClient, tenant: Tenant) -> None:
    staff = {**tenant.headers(Role.integration), **HOSTILE}
    patient_id = tenant.patient()

    created = untouched(
        public.post(
            "/fhir/R4/QuestionnaireResponse",
            json=us_core_phq9(patient_id, [1] * 9),
            headers={**staff, "Content-Type": "application/fhir+json"},
        )
    )
    assert created.status_code == 201, created.text
    form_id = created.json()["id"]
    assert created.headers["Location"] == f"{FHIR_BASE}/QuestionnaireResponse/{form_id}/_history/1"
    again = untouched(
        public.post(
            "/fhir/R4/QuestionnaireResponse",
            json=us_core_phq9(patient_id, [2] * 9),
            headers={**staff, "Content-Type": "application/fhir+json"},
        )
    )
    assert again.status_code == 201

    page = untouched(
        public.get(
            "/fhir/R4/Observation", params={"patient": patient_id, "_count": 1}, headers=staff
        )
    )
    bundle = page.json()
    links = {link["relation"]: link["url"] for link in bundle["link"]}
    assert links["self"] == f"{FHIR_BASE}/Observation?patient={patient_id}&_count=1"
    assert links["next"].startswith(f"{FHIR_BASE}/Observation?")
    assert parse_qs(urlsplit(links["next"]).query)["patient"] == [patient_id]
    [entry] = bundle["entry"]
    assert entry["fullUrl"] == f"{FHIR_BASE}/Observation/{entry['resource']['id']}"

    for path in ("QuestionnaireResponse", "Patient", "Questionnaire"):
        params = {"_id": patient_id} if path == "Patient" else {}
        resp = untouched(public.get(f"/fhir/R4/{path}", params=params, headers=staff))
        assert resp.status_code == 200, resp.text
        for entry in resp.json()["entry"]:
            assert entry["fullUrl"].startswith(f"{FHIR_BASE}/{path}/")

    metadata = untouched(public.get("/fhir/R4/metadata", headers=HOSTILE))
    assert metadata.json()["implementation"]["url"] == FHIR_BASE


def test_oauth_discovery_and_errors_use_the_configured_base(
    public: TestClient, tenant: Tenant
) -> None:
    smart = untouched(public.get("/.well-known/smart-configuration", headers=HOSTILE))
    assert smart.json()["token_endpoint"] == PUBLIC + "/oauth/token"
    for path in ("/fhir/R4/Nothing", "/v1/nothing", "/fhir/R4/Patient/", "/v1/patients/"):
        resp = untouched(
            public.get(path, headers={**tenant.headers(), **HOSTILE}, follow_redirects=False)
        )
        assert resp.status_code in (400, 404), (path, resp.status_code)
    untouched(public.post("/v1/patients", json={}, headers={**tenant.headers(), **HOSTILE}))


def test_v1_answers_carry_no_client_host(public: TestClient, tenant: Tenant) -> None:
    headers = {**tenant.headers(), **HOSTILE}
    created = untouched(public.post("/v1/patients", json={"external_id": "x-1"}, headers=headers))
    assert created.status_code == 201, created.text
    patient_id = created.json()["id"]
    assessment = untouched(
        public.post(
            f"/v1/patients/{patient_id}/assessments",
            json={
                "instrument": "gad7",
                "items": [1] * 7,
                "administered_at": "2026-03-02T09:00:00Z",
            },
            headers=headers,
        )
    )
    assert assessment.status_code == 201, assessment.text
    untouched(public.get(f"/v1/patients/{patient_id}/assessments", headers=headers))


@pytest.mark.skipif(bool(PG_URL), reason="a start-up check; it needs no particular database")
def test_production_refuses_the_default_public_base_url(tmp_path: Path) -> None:
    """Each refusal is a `serve` of its own that must exit by itself (before it imports the
    app: serving.servable); they and the configured `serve` run at the same time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAP_")}
    env |= {
        "KAP_ENVIRONMENT": "production",
        "KAP_SIGNING_KEY": TEST_SIGNING_KEY,
        "KAP_DATABASE_URL": f"sqlite:///{tmp_path / 'kap.db'}",
        "KAP_RATE_LIMIT_PER_MINUTE": "0",
        "KAP_FAILED_AUTH_PER_MINUTE": "0",
    }
    serve = ("serve", "--port", str(free_port()))
    refusing = [
        start_cli(serve, env=env | settings, cwd=tmp_path)
        for settings in (
            {},  # unset: the default
            {"KAP_PUBLIC_BASE_URL": "http://127.0.0.1:8000"},  # the default, spelt out
            {"KAP_PUBLIC_BASE_URL": "evil.example/x y"},  # malformed
        )
    ]
    try:
        # Configured, it starts, and its links are the configured ones whatever the Host says.
        service = ServiceProcess(
            env | {"KAP_PUBLIC_BASE_URL": "https://outcomes.example.org"},
            tmp_path,
        )
        try:
            resp = http_get(f"{service.base}/fhir/R4/metadata", headers={"Host": "evil.example"})
            assert resp.json()["implementation"]["url"] == "https://outcomes.example.org/fhir/R4"
        finally:
            service.stop()
    finally:
        refused = [finish(proc, timeout=60) for proc in refusing]
    # The default, unset or named, is refused in one line naming the variable; a malformed
    # address is refused the same way, without echoing it.
    for out in refused:
        message = (out.stdout + out.stderr).strip()
        assert out.returncode != 0, message
        assert "Traceback" not in message, message
        assert len(message.splitlines()) == 1, message
        assert "KAP_PUBLIC_BASE_URL" in message, message
