"""Patient app enrollment: a single-use, short-lived code for the app's own token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from kap_outcomes.auth.models import Role

PHQ9 = {"instrument": "phq9", "items": [1] * 9, "administered_at": "2026-03-02T15:04:05Z"}


def _code(tenant, pid, role=Role.clinician):
    return tenant.client.post(f"/v1/patients/{pid}/enrollments", headers=tenant.headers(role))


def _enroll(client, code):
    return client.post("/v1/auth/enroll", json={"code": code})


def test_the_app_enrolls_and_reaches_only_its_own_patient(tenant):
    pid, other_pid = tenant.patient(), tenant.patient()
    issued = _code(tenant, pid)
    assert issued.status_code == 201, issued.text
    expires = datetime.fromisoformat(issued.json()["expires_at"])
    assert timedelta(minutes=5) < expires - datetime.now(UTC) <= timedelta(minutes=15)
    enrolled = _enroll(tenant.client, issued.json()["code"])
    assert enrolled.status_code == 201, enrolled.text
    assert enrolled.json()["patient_id"] == pid
    app = {"Authorization": f"Bearer {enrolled.json()['token']}"}
    assert tenant.client.get(f"/v1/patients/{pid}", headers=app).status_code == 200
    submitted = tenant.client.post(
        f"/v1/patients/{pid}/assessments", json=PHQ9 | {"source": "clinician"}, headers=app
    )
    assert submitted.status_code == 201 and submitted.json()["source"] == "patient"
    assert tenant.client.get(f"/v1/patients/{other_pid}", headers=app).status_code == 404
    assert tenant.client.get("/v1/patients", headers=app).status_code == 403


def test_a_code_works_once(tenant):
    code = _code(tenant, tenant.patient()).json()["code"]
    assert _enroll(tenant.client, code).status_code == 201
    reused = _enroll(tenant.client, code)
    assert reused.status_code == 400
    assert reused.headers["content-type"] == "application/problem+json"


def test_an_expired_code_fails_like_an_unknown_one(tenant, db):
    pid = tenant.patient()
    code = _code(tenant, pid).json()["code"]
    past = datetime.now(UTC) - timedelta(seconds=1)
    db.run_write(
        lambda c: c.execute(
            text("UPDATE enrollment_codes SET expires_at = :t WHERE patient_id = :p"),
            {"t": past.replace(tzinfo=None) if c.dialect.name == "sqlite" else past, "p": pid},
        )
    )
    expired = _enroll(tenant.client, code)
    unknown = _enroll(tenant.client, "ABCD-EFGH-JKMN-PQRS")
    assert expired.status_code == unknown.status_code == 400
    assert expired.json()["detail"] == unknown.json()["detail"]


@pytest.mark.parametrize("code", ["", "x" * 65, "not a code", "ABCD-EFGH-JKMN-PQR!", "🙂" * 16])
def test_guesses_and_garbage_fail_cleanly(tenant, count_rows, code):
    resp = _enroll(tenant.client, code)
    assert resp.status_code in (400, 422)
    assert resp.headers["content-type"] == "application/problem+json"
    assert code not in resp.text or not code


def test_a_typed_code_is_forgiven_case_hyphens_and_confusables(tenant):
    code = _code(tenant, tenant.patient()).json()["code"]
    typed = code.replace("-", " ").lower().replace("0", "o").replace("1", "l")
    assert _enroll(tenant.client, typed).status_code == 201


def test_codes_are_stored_only_as_hashes(tenant, db):
    pid = tenant.patient()
    code = _code(tenant, pid).json()["code"]
    stored = db.run_read(
        lambda c: c.execute(
            text("SELECT code_hash FROM enrollment_codes WHERE patient_id = :p"), {"p": pid}
        ).scalar_one()
    )
    assert code.replace("-", "") not in stored and code not in stored


def test_who_may_issue_codes(tenant, make_tenant):
    pid = tenant.patient()
    assert _code(tenant, pid, Role.admin).status_code == 201
    assert _code(tenant, pid, Role.integration).status_code == 403
    patient = tenant.client.post(
        f"/v1/patients/{pid}/enrollments", headers=tenant.patient_token(pid)
    )
    assert patient.status_code == 403
    other = make_tenant()
    assert _code(other, pid).status_code == 404
