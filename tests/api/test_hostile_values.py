"""Hostile values that a database refuses or a clock cannot hold: a clean 4xx, nothing stored.

The ends of the calendar with offsets (``9999-12-31T23:59:59-14:00`` is after the last UTC
instant Python holds, ``0001-01-01T00:00:00+14:00`` before the first), NUL characters, which
PostgreSQL cannot store in text or JSONB, and database errors of the "this value does not fit"
kind. Each is a 422 (a 400 for a FHIR search parameter) naming the field, on /v1 and /fhir and
on both databases, never a 500 and never "database unreachable".
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select, text

from kap_outcomes.audit.models import AuditEvent
from kap_outcomes.auth.models import Role
from kap_outcomes.db import Database
from kap_outcomes.errors import DomainError

from ..conftest import Tenant
from .test_smart import Backend, new_private_key, public_jwk

END_OF_TIME = "9999-12-31T23:59:59-14:00"
"""Its UTC form would be 10000-01-01T13:59:59Z."""
BEFORE_TIME = "0001-01-01T00:00:00+14:00"
"""Its UTC form would be 0000-12-31T10:00:00Z."""
EDGES = [END_OF_TIME, BEFORE_TIME]

PHQ9 = {"instrument": "phq9", "items": [1] * 9, "administered_at": "2026-03-02T15:04:05Z"}
NUL_TEXT = "ext\u0000ernal"


def _problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json", resp.text
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    return body


def _outcome(resp: Any, status: int) -> list[dict[str, Any]]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/fhir+json")
    body = resp.json()
    assert body["resourceType"] == "OperationOutcome"
    return list(body["issue"])


def _pointers(body: dict[str, Any]) -> list[str]:
    return [e.get("pointer") or e.get("parameter") for e in body.get("errors", [])]


def _stored(db: Database, org_id: str) -> dict[str, int]:
    def count(conn: Any) -> dict[str, int]:
        return {
            table: int(
                conn.execute(
                    text(f"SELECT count(*) FROM {table} WHERE organisation_id = :o"),
                    {"o": org_id},
                ).scalar_one()
            )
            for table in (
                "patients",
                "courses",
                "care_sessions",
                "assessments",
                "assessment_revisions",
                "alerts",
                "api_tokens",
                "smart_clients",
                "fhir_identifiers",
            )
        }

    return db.run_read(count)


def _qr(patient_id: str, **fields: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": "http://loinc.org/q/44249-1",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authored": "2026-03-02T15:04:05Z",
        "item": [
            {"linkId": code, "answer": [{"valueInteger": 1}]}
            for code in (
                "44250-9",
                "44255-8",
                "44259-0",
                "44254-1",
                "44251-7",
                "44258-2",
                "44252-5",
                "44253-3",
                "44260-8",
            )
        ],
    }
    return form | fields


def _fhir_post(tenant: Tenant, body: dict[str, Any]) -> Any:
    return tenant.client.post(
        "/fhir/R4/QuestionnaireResponse",
        json=body,
        headers=tenant.headers() | {"content-type": "application/fhir+json"},
    )


# --- the ends of the calendar ---------------------------------------------------------------


@pytest.mark.parametrize("edge", EDGES)
def test_a_token_expiring_beyond_the_calendar_is_422(tenant: Tenant, db: Database, edge: str):
    before = _stored(db, tenant.org_id)
    resp = tenant.post("/v1/tokens", {"role": "clinician", "expires_at": edge}, role=Role.admin)
    assert _pointers(_problem(resp, 422)) == ["/expires_at"]
    assert _stored(db, tenant.org_id) == before


@pytest.mark.parametrize("edge", EDGES)
def test_bodies_with_timestamps_beyond_the_calendar_are_422(
    tenant: Tenant, db: Database, edge: str
):
    pid = tenant.patient()
    assessment = tenant.post(f"/v1/patients/{pid}/assessments", PHQ9).json()
    before = _stored(db, tenant.org_id)
    cases = [
        (f"/v1/patients/{pid}/assessments", PHQ9 | {"administered_at": edge}, "/administered_at"),
        (f"/v1/patients/{pid}/sessions", {"kind": "intake", "occurred_at": edge}, "/occurred_at"),
        (f"/v1/patients/{pid}/courses", {"started_at": edge}, "/started_at"),
        (
            f"/v1/assessments/{assessment['id']}/amend",
            {"items": [0] * 9, "reason": "typo", "administered_at": edge},
            "/administered_at",
        ),
    ]
    for path, body, pointer in cases:
        resp = tenant.client.post(path, json=body, headers=tenant.headers() | {"If-Match": 'W/"1"'})
        assert _pointers(_problem(resp, 422)) == [pointer], path
    issues = _outcome(_fhir_post(tenant, _qr(pid, authored=edge)), 422)
    assert issues[0]["expression"] == ["QuestionnaireResponse.authored"]
    assert _stored(db, tenant.org_id) == before


@pytest.mark.parametrize("edge", EDGES)
def test_v1_searches_beyond_the_calendar_are_422(tenant: Tenant, edge: str):
    pid = tenant.patient()
    for name in ("since", "until"):
        resp = tenant.get(f"/v1/patients/{pid}/assessments", params={name: edge})
        assert _pointers(_problem(resp, 422)) == [name]
        resp = tenant.get("/v1/audit-events", params={name: edge}, role=Role.admin)
        assert _pointers(_problem(resp, 422)) == [name]


@pytest.mark.parametrize("edge", EDGES)
@pytest.mark.parametrize("prefix", ["", "eq", "ge", "gt", "le", "lt"])
def test_fhir_searches_beyond_the_calendar_are_400(tenant: Tenant, edge: str, prefix: str):
    tenant.post(f"/v1/patients/{tenant.patient()}/assessments", PHQ9)
    for path, name in [
        ("/fhir/R4/Observation", "date"),
        ("/fhir/R4/Observation", "_lastUpdated"),
        ("/fhir/R4/QuestionnaireResponse", "authored"),
        ("/fhir/R4/QuestionnaireResponse", "_lastUpdated"),
    ]:
        issues = _outcome(tenant.get(path, params={name: prefix + edge}), 400)
        assert issues[0]["expression"] == [name], (path, name)


def test_the_last_and_first_utc_instants_are_ordinary_values(tenant: Tenant):
    """The edges themselves are fine: only what lies beyond them is refused."""
    resp = tenant.post(
        "/v1/tokens", {"role": "clinician", "expires_at": "9999-12-31T23:59:59Z"}, role=Role.admin
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["expires_at"] == "9999-12-31T23:59:59Z"
    pid = tenant.patient()
    for bound in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"):
        assert tenant.get(f"/v1/patients/{pid}/assessments", params={"since": bound}).is_success
        assert tenant.get("/fhir/R4/Observation", params={"date": "ge" + bound}).is_success


# --- NUL characters -------------------------------------------------------------------------


def test_nul_in_any_v1_body_is_422_pointing_at_it(tenant: Tenant, db: Database):
    pid = tenant.patient()
    assessment = tenant.post(f"/v1/patients/{pid}/assessments", PHQ9).json()
    alert_id = assessment["alerts"][0]["id"] if assessment["alerts"] else None
    before = _stored(db, tenant.org_id)
    jwk = public_jwk(new_private_key("RS384"), "k1")
    cases: list[tuple[str, Any, str, Role]] = [
        ("/v1/patients", {"external_id": NUL_TEXT}, "/external_id", Role.clinician),
        (f"/v1/patients/{pid}/courses", {"label": NUL_TEXT}, "/label", Role.clinician),
        (
            f"/v1/patients/{pid}/assessments",
            PHQ9 | {"session_id": NUL_TEXT},
            "/session_id",
            Role.clinician,
        ),
        (
            f"/v1/assessments/{assessment['id']}/retract",
            {"reason": NUL_TEXT},
            "/reason",
            Role.clinician,
        ),
        ("/v1/tokens", {"role": "clinician", "label": NUL_TEXT}, "/label", Role.admin),
        (
            "/v1/clients",
            {"name": "ehr", "jwks": {"keys": [jwk | {"kid": NUL_TEXT}]}, "scope": "system/*.rs"},
            "/jwks/keys/0/kid",
            Role.admin,
        ),
        (
            "/v1/clients",
            {"name": "ehr", "jwks": {"keys": [jwk | {"x5u": NUL_TEXT}]}, "scope": "system/*.rs"},
            "/jwks/keys/0/x5u",
            Role.admin,
        ),
        (
            "/v1/clients",
            {"name": "ehr", "jwks": {"keys": [jwk | {NUL_TEXT: "x"}]}, "scope": "system/*.rs"},
            "/jwks/keys/0/ext\u0000ernal",
            Role.admin,
        ),
    ]
    if alert_id is not None:
        cases.append(
            (f"/v1/alerts/{alert_id}/acknowledge", {"note": NUL_TEXT}, "/note", Role.clinician)
        )
    for path, body, pointer, role in cases:
        resp = tenant.client.post(
            path,
            json=body,
            headers=tenant.headers(role) | {"If-Match": "*"},
        )
        assert _pointers(_problem(resp, 422)) == [pointer], (path, resp.text)
        if "\x00" not in pointer:  # the value is never echoed (a member name is its pointer)
            assert "\\u0000" not in resp.text
    assert _stored(db, tenant.org_id) == before


def test_an_escaped_backslash_before_u0000_is_ordinary_text(tenant: Tenant):
    """``"\\\\u0000"`` in JSON is a backslash followed by "u0000": no NUL, nothing refused."""
    resp = tenant.post("/v1/patients", {"external_id": "a\\u0000b"})
    assert resp.status_code in (201, 422), resp.text  # the external_id rules may refuse "\\"
    if resp.status_code == 422:
        assert "NUL" not in resp.text


def test_nul_in_a_fhir_body_is_422_with_its_expression(tenant: Tenant, db: Database):
    pid = tenant.patient("fhir-nul")
    before = _stored(db, tenant.org_id)
    for body in [
        _qr(pid, identifier={"system": "urn:ehr", "value": NUL_TEXT}),
        _qr(pid, subject={"identifier": {"value": NUL_TEXT}}),
        _qr(pid, questionnaire="http://loinc.org/q/44249-1" + "\u0000"),
    ]:
        issues = _outcome(_fhir_post(tenant, body), 422)
        assert issues[0]["diagnostics"].startswith("must not contain NUL"), issues
    assert _stored(db, tenant.org_id) == before


@pytest.mark.parametrize(
    ("path", "name", "value", "role"),
    [
        ("/v1/patients", "external_id", NUL_TEXT, Role.clinician),
        ("/v1/alerts", "patient_id", NUL_TEXT, Role.clinician),
        ("/v1/audit-events", "actor", NUL_TEXT, Role.admin),
        ("/v1/caseload", "cursor", NUL_TEXT, Role.clinician),
    ],
)
def test_nul_in_a_v1_query_parameter_is_422_naming_it(
    tenant: Tenant, path: str, name: str, value: str, role: Role
):
    assert _pointers(_problem(tenant.get(path, params={name: value}, role=role), 422)) == [name]


@pytest.mark.parametrize(
    ("path", "name", "value"),
    [
        ("/fhir/R4/Patient", "identifier", "https://kap-outcomes.dev/fhir/sid/external-id|a\0b"),
        ("/fhir/R4/Observation", "code", "http://loinc.org|44261-6\0"),
        ("/fhir/R4/Observation", "patient", "Patient/\0"),
        ("/fhir/R4/QuestionnaireResponse", "questionnaire", "http://loinc.org/q/44249-1\0"),
        ("/fhir/R4/Questionnaire", "url", "\0"),
    ],
)
def test_nul_in_a_fhir_search_parameter_is_400_naming_it(
    tenant: Tenant, path: str, name: str, value: str
):
    issues = _outcome(tenant.get(path, params={name: value}), 400)
    assert issues[0]["expression"] == [name]


def test_nul_in_a_client_assertion_jti_is_invalid_grant(tenant: Tenant, db: Database):
    backend = Backend(tenant)
    resp = backend.request_token(backend.assertion(jti="replay\u0000"))
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_grant"
    stored = db.run_read(
        lambda c: c.execute(
            text("SELECT count(*) FROM smart_jtis WHERE client_id = :c"),
            {"c": backend.client_id},
        ).scalar_one()
    )
    assert stored == 0


# --- database errors by kind ----------------------------------------------------------------


def test_a_value_the_database_cannot_hold_is_422_not_503(db: Database):
    """Translated by kind: an out-of-range value is the client's (422), never "unreachable"."""
    if db.sqlite:  # a Python int beyond 64 bits cannot be bound
        statement, value = "SELECT :v", 2**70
    else:  # 22003 numeric_value_out_of_range
        statement, value = "SELECT CAST(:v AS INTEGER)", 2**40
    with pytest.raises(DomainError) as caught:
        db.run_write(lambda conn: conn.execute(text(statement), {"v": value}).scalar())
    assert caught.value.status == 422


def test_a_timestamp_without_a_utc_form_is_422_at_the_column_too(db: Database):
    """Below the API's own validation: the column type refuses it, and that is a 422."""
    edge = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(-timedelta(hours=14)))
    events = AuditEvent.__table__  # type: ignore[attr-defined]
    with pytest.raises(DomainError) as caught:
        db.run_read(
            lambda conn: conn.execute(
                select(func.count()).select_from(events).where(events.c.at < edge)
            ).scalar_one()
        )
    assert caught.value.status == 422
