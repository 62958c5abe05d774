"""Token lifecycle over HTTP: admins issue (secret once), list (never a secret), revoke."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from kap_outcomes.auth.models import Role


def _create(tenant, body, role=Role.admin):
    return tenant.post("/v1/tokens", body, role)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_admin_issues_a_token_that_works_and_is_shown_once(tenant, db):
    resp = _create(tenant, {"role": "clinician", "label": "front desk"})
    assert resp.status_code == 201, resp.text
    issued = resp.json()
    assert issued["token"].startswith("kap_") and issued["role"] == "clinician"
    assert tenant.client.get("/v1/patients", headers=_bearer(issued["token"])).status_code == 200
    listed = tenant.get("/v1/tokens", Role.admin).json()["data"]
    mine = [t for t in listed if t["id"] == issued["id"]]
    assert mine and "token" not in mine[0] and issued["token"] not in str(listed)
    stored = db.run_read(
        lambda c: c.execute(
            text("SELECT token_hash FROM api_tokens WHERE id = :i"), {"i": issued["id"]}
        ).scalar_one()
    )
    assert stored != issued["token"] and issued["token"] not in stored


def test_a_revoked_token_is_401_from_the_next_request(tenant):
    issued = _create(tenant, {"role": "integration"}).json()
    headers = _bearer(issued["token"])
    assert tenant.client.get("/v1/patients", headers=headers).status_code == 200
    revoke = tenant.client.delete(f"/v1/tokens/{issued['id']}", headers=tenant.headers(Role.admin))
    assert revoke.status_code == 204
    after = tenant.client.get("/v1/patients", headers=headers)
    assert after.status_code == 401 and after.headers["www-authenticate"].startswith("Bearer")
    again = tenant.client.delete(f"/v1/tokens/{issued['id']}", headers=tenant.headers(Role.admin))
    assert again.status_code == 204
    listed = {t["id"]: t for t in tenant.get("/v1/tokens", Role.admin).json()["data"]}
    assert listed[issued["id"]]["revoked_at"] is not None


def test_an_expired_token_is_401(tenant, db):
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    issued = _create(tenant, {"role": "clinician", "expires_at": soon}).json()
    headers = _bearer(issued["token"])
    assert tenant.client.get("/v1/patients", headers=headers).status_code == 200
    past = datetime.now(UTC) - timedelta(seconds=1)
    db.run_write(
        lambda c: c.execute(
            text("UPDATE api_tokens SET expires_at = :t WHERE id = :i"),
            {
                "t": past.replace(tzinfo=None) if c.dialect.name == "sqlite" else past,
                "i": issued["id"],
            },
        )
    )
    assert tenant.client.get("/v1/patients", headers=headers).status_code == 401


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"role": "patient"}, "/patient_id"),
        ({"role": "clinician", "patient_id": "0"}, "/patient_id"),
        ({"role": "clinician", "expires_at": "2020-01-01T00:00:00Z"}, "/expires_at"),
        ({"role": "clinician", "expires_at": "2030-01-01T00:00:00"}, "/expires_at"),
        ({"role": "superuser"}, "/role"),
        ({"role": "clinician", "label": "bell\u0007"}, "/label"),
        ({"role": "clinician", "secret": "x"}, "/secret"),
    ],
)
def test_bad_token_requests_are_422(tenant, body, pointer):
    resp = _create(tenant, body)
    assert resp.status_code == 422, resp.text
    assert pointer in [e["pointer"] for e in resp.json()["errors"]]


def test_a_patient_token_needs_a_patient_of_this_organisation(tenant, make_tenant):
    other = make_tenant()
    theirs = other.patient()
    assert _create(tenant, {"role": "patient", "patient_id": theirs}).status_code == 422
    ours = tenant.patient()
    issued = _create(tenant, {"role": "patient", "patient_id": ours}).json()
    assert issued["patient_id"] == ours
    own = tenant.client.get(f"/v1/patients/{ours}", headers=_bearer(issued["token"]))
    assert own.status_code == 200


@pytest.mark.parametrize("role", [Role.clinician, Role.integration])
def test_only_admins_manage_tokens(tenant, role):
    assert _create(tenant, {"role": "clinician"}, role).status_code == 403
    assert tenant.get("/v1/tokens", role).status_code == 403
    target = _create(tenant, {"role": "clinician"}).json()["id"]
    resp = tenant.client.delete(f"/v1/tokens/{target}", headers=tenant.headers(role))
    assert resp.status_code == 403


def test_another_organisations_token_is_404(tenant, make_tenant):
    other = make_tenant()
    theirs = _create(other, {"role": "clinician"}).json()
    resp = tenant.client.delete(f"/v1/tokens/{theirs['id']}", headers=tenant.headers(Role.admin))
    assert resp.status_code == 404
    assert other.client.get("/v1/patients", headers=_bearer(theirs["token"])).status_code == 200
