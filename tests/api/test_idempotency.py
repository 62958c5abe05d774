"""Idempotency-Key on creating POSTs: replay, mismatch, scope, concurrency, retention."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import text

from kap_outcomes.auth.models import Role
from kap_outcomes.db import utcnow
from kap_outcomes.idempotency.service import RETENTION, purge

PHQ9 = {
    "instrument": "phq9",
    "items": [1, 2, 1, 0, 1, 2, 1, 0, 1],
    "administered_at": "2026-03-02T15:04:05Z",
}


def _key() -> str:
    return str(uuid.uuid4())


def _post(tenant, path, body, key, role=Role.clinician):
    headers = tenant.headers(role) | {"Idempotency-Key": key}
    return tenant.client.post(path, json=body, headers=headers)


def test_same_key_same_body_replays_the_first_response(tenant, count_rows):
    pid = tenant.patient()
    key = _key()
    first = _post(tenant, f"/v1/patients/{pid}/assessments", PHQ9, key)
    again = _post(tenant, f"/v1/patients/{pid}/assessments", PHQ9, key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert count_rows("assessments", tenant.org_id) == 1
    # the safety alert it opened is not opened twice either
    assert count_rows("alerts", tenant.org_id) == 1


def test_same_key_different_body_is_422_and_stores_nothing(tenant, count_rows):
    pid = tenant.patient()
    key = _key()
    assert _post(tenant, f"/v1/patients/{pid}/assessments", PHQ9, key).status_code == 201
    changed = PHQ9 | {"items": [0] * 9}
    resp = _post(tenant, f"/v1/patients/{pid}/assessments", changed, key)
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["type"].endswith("idempotency-key-reused")
    assert count_rows("assessments", tenant.org_id) == 1


def test_a_replayed_patient_create_is_201_not_a_duplicate_409(tenant, count_rows):
    key = _key()
    body = {"external_id": f"ext-{uuid.uuid4()}"}
    first = _post(tenant, "/v1/patients", body, key)
    again = _post(tenant, "/v1/patients", body, key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    # without the key, the same body is the duplicate it is
    assert tenant.post("/v1/patients", body).status_code == 409
    assert count_rows("patients", tenant.org_id) == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/courses", {"induction_doses": 6}),
        (
            "/sessions",
            {
                "kind": "dosing",
                "occurred_at": "2026-03-02T15:00:00Z",
                "dose": {"route": "im", "amount_mg": 50},
            },
        ),
    ],
)
def test_courses_and_sessions_are_idempotent_too(tenant, count_rows, path, body):
    pid = tenant.patient()
    key = _key()
    first = _post(tenant, f"/v1/patients/{pid}{path}", body, key)
    again = _post(tenant, f"/v1/patients/{pid}{path}", body, key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    table = "courses" if path == "/courses" else "care_sessions"
    assert count_rows(table, tenant.org_id) == 1


def test_keys_belong_to_the_token_that_sent_them(tenant, count_rows):
    pid = tenant.patient()
    key = _key()
    a = _post(tenant, f"/v1/patients/{pid}/assessments", PHQ9, key, Role.clinician)
    b = _post(tenant, f"/v1/patients/{pid}/assessments", PHQ9, key, Role.integration)
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]
    assert count_rows("assessments", tenant.org_id) == 2


def test_concurrent_duplicates_make_one_row(tenant, count_rows):
    pid = tenant.patient()
    key = _key()
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(
            pool.map(
                lambda _: _post(tenant, f"/v1/patients/{pid}/assessments", PHQ9, key), range(16)
            )
        )
    statuses = {r.status_code for r in responses}
    assert statuses <= {201, 409}
    ids = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(ids) == 1
    assert count_rows("assessments", tenant.org_id) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "clé-non-ascii".encode(), "with space"])
def test_a_malformed_key_is_422_and_stores_nothing(tenant, count_rows, key):
    pid = tenant.patient()
    headers = tenant.headers() | {"Idempotency-Key": key}
    resp = tenant.client.post(f"/v1/patients/{pid}/assessments", json=PHQ9, headers=headers)
    assert resp.status_code == 422
    assert any(e.get("parameter") == "Idempotency-Key" for e in resp.json()["errors"])
    assert count_rows("assessments", tenant.org_id) == 0


def test_a_key_past_its_retention_is_free_again_and_purged(tenant, db, count_rows):
    pid = tenant.patient()
    key = _key()
    assert _post(tenant, f"/v1/patients/{pid}/assessments", PHQ9, key).status_code == 201
    lapsed = utcnow() - RETENTION - timedelta(hours=1)
    db.run_write(
        lambda c: c.execute(
            text("UPDATE idempotency_records SET created_at = :t WHERE organisation_id = :o"),
            {
                "t": lapsed.replace(tzinfo=None) if c.dialect.name == "sqlite" else lapsed,
                "o": tenant.org_id,
            },
        )
    )
    resp = _post(tenant, f"/v1/patients/{pid}/assessments", PHQ9, key)
    assert resp.status_code == 201 and "Idempotent-Replayed" not in resp.headers
    assert count_rows("assessments", tenant.org_id) == 2
    # kept at least 24 hours: a fresh key survives a purge, a lapsed one does not
    db.run_write(
        lambda c: c.execute(
            text("UPDATE idempotency_records SET created_at = :t WHERE organisation_id = :o"),
            {
                "t": lapsed.replace(tzinfo=None) if c.dialect.name == "sqlite" else lapsed,
                "o": tenant.org_id,
            },
        )
    )
    fresh = _key()
    assert _post(tenant, f"/v1/patients/{pid}/assessments", PHQ9, fresh).status_code == 201
    assert db.run_write(purge) >= 1
    assert count_rows("idempotency_records", tenant.org_id) == 1
