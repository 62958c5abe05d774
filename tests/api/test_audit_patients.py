"""Every request leaves exactly one audit event naming the patient it concerned.

Also when it fails: refused (4xx), or crashed (500) on the database, and when a request runs
several units of work of which a later one fails. The patient is the one the request was
about, whether the path names it, a filter does, or only the row read does (an assessment's
history, a FHIR resource).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from kap_outcomes.app import create_app
from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.auth.dependencies import DbDep, PrincipalDep
from kap_outcomes.auth.models import Role
from kap_outcomes.config import Settings
from kap_outcomes.db import Database
from kap_outcomes.errors import invalid

from ..conftest import Tenant
from ..refusals import refusing_inserts

PHQ9 = {"instrument": "phq9", "items": [1] * 9, "administered_at": "2026-03-02T15:04:05Z"}


def _events(db: Database, request_id: str) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in db.run_read(
            lambda c: c.execute(
                text("SELECT action, status, patient_id FROM audit_events WHERE request_id = :r"),
                {"r": request_id},
            ).all()
        )
    ]


def _get(tenant: Tenant, path: str, role: Role = Role.clinician, **params: Any) -> str:
    rid = f"aud-{uuid.uuid4().hex[:16]}"
    tenant.client.get(path, params=params, headers=tenant.headers(role) | {"X-Request-ID": rid})
    return rid


def test_reads_found_by_a_row_or_a_filter_name_their_patient(tenant: Tenant, db: Database):
    external_id = f"mrn-{uuid.uuid4().hex[:12]}"
    pid = tenant.patient(external_id)
    created = tenant.post(f"/v1/patients/{pid}/assessments", PHQ9).json()
    aid = created["id"]
    cases = [
        ("/v1/patients", "/v1/patients", {"external_id": external_id}),
        (
            "/fhir/R4/Patient",
            "/fhir/R4/Patient",
            {"identifier": f"https://kap-outcomes.dev/fhir/sid/external-id|{external_id}"},
        ),
        ("/v1/assessments/{assessment_id}/history", f"/v1/assessments/{aid}/history", {}),
        ("/v1/alerts", "/v1/alerts", {"patient_id": pid}),
        (
            "/fhir/R4/QuestionnaireResponse/{response_id}",
            f"/fhir/R4/QuestionnaireResponse/{aid}",
            {},
        ),
        ("/fhir/R4/Observation/{observation_id}", f"/fhir/R4/Observation/{aid}-total", {}),
        ("/fhir/R4/QuestionnaireResponse", "/fhir/R4/QuestionnaireResponse", {"patient": pid}),
        ("/fhir/R4/Observation", "/fhir/R4/Observation", {"patient": f"Patient/{pid}"}),
    ]
    for route, path, params in cases:
        rid = _get(tenant, path, **params)
        assert _events(db, rid) == [(f"GET {route}", 200, pid)], route


def test_a_patient_token_s_searches_name_its_patient(tenant: Tenant, db: Database):
    pid = tenant.patient()
    tenant.post(f"/v1/patients/{pid}/assessments", PHQ9)
    headers = tenant.patient_token(pid)
    for route in ("/fhir/R4/Observation", "/fhir/R4/QuestionnaireResponse"):
        rid = f"aud-{uuid.uuid4().hex[:16]}"
        resp = tenant.client.get(route, headers=headers | {"X-Request-ID": rid})
        assert resp.status_code == 200
        assert _events(db, rid) == [(f"GET {route}", 200, pid)]


def test_a_successful_enrollment_is_audited_with_its_patient(tenant: Tenant, db: Database):
    pid = tenant.patient()
    code = tenant.post(f"/v1/patients/{pid}/enrollments", {}).json()["code"]
    rid = f"aud-{uuid.uuid4().hex[:16]}"
    resp = tenant.client.post("/v1/auth/enroll", json={"code": code}, headers={"X-Request-ID": rid})
    assert resp.status_code == 201, resp.text
    assert _events(db, rid) == [("POST /v1/auth/enroll", 201, pid)]
    role = db.run_read(
        lambda c: c.execute(
            text("SELECT role FROM audit_events WHERE request_id = :r"), {"r": rid}
        ).scalar_one()
    )
    assert role == "patient"


def test_a_request_that_ends_in_500_leaves_one_event_with_its_patient(tenant: Tenant, db: Database):
    pid = tenant.patient()
    rid = f"aud-{uuid.uuid4().hex[:16]}"
    with refusing_inserts(db, "courses", tenant.org_id):
        resp = tenant.client.post(
            f"/v1/patients/{pid}/courses", json={}, headers=tenant.headers() | {"X-Request-ID": rid}
        )
    assert resp.status_code == 500, resp.text
    assert _events(db, rid) == [("POST /v1/patients/{patient_id}/courses", 500, pid)]


@pytest.fixture
def two_step_client(database_url: str, settings: Settings) -> Iterator[TestClient]:
    """The app, plus a route that writes (successfully) and then fails, as the caseload can
    (a write of refreshed summaries, then the page read)."""
    app = create_app(settings)
    extra = FastAPI()
    extra.router.route_class = AuditedRoute

    async def _noop(conn: Any) -> None:
        return None

    @extra.router.get("/v1/patients/{patient_id}/two-steps")
    async def two_steps(patient_id: str, principal: PrincipalDep, db: DbDep, fail: str) -> None:
        await db.write(lambda conn: None)
        if fail == "refused":
            raise invalid([], detail="refused after a write")
        raise RuntimeError("crashed after a write")

    app.router.routes[:0] = extra.router.routes
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(("fail", "status"), [("refused", 422), ("crashed", 500)])
def test_several_units_of_work_then_a_failure_still_leave_one_event(
    tenant: Tenant, db: Database, two_step_client: TestClient, fail: str, status: int
):
    pid = tenant.patient()
    rid = f"aud-{uuid.uuid4().hex[:16]}"
    resp = two_step_client.get(
        f"/v1/patients/{pid}/two-steps",
        params={"fail": fail},
        headers=tenant.headers() | {"X-Request-ID": rid},
    )
    assert resp.status_code == status
    assert _events(db, rid) == [("GET /v1/patients/{patient_id}/two-steps", status, pid)]
