"""A patient's identifiers in other systems (an EHR's MRN): set on create and by PATCH, one
patient per (organisation, system, value), never echoed in an error."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

MRN = "https://ehr.example.org/mrn"
OID = "urn:oid:2.16.840.1.113883.19.5"


def value() -> str:
    return f"MRN{uuid.uuid4().hex[:10].upper()}"


def create(tenant: Any, identifiers: Any) -> Any:
    return tenant.post(
        "/v1/patients", {"external_id": f"ext-{uuid.uuid4()}", "identifiers": identifiers}
    )


def patch(tenant: Any, patient_id: str, body: dict[str, Any], etag: str | None) -> Any:
    headers = tenant.headers() | ({"If-Match": etag} if etag else {})
    return tenant.client.patch(f"/v1/patients/{patient_id}", json=body, headers=headers)


def test_identifiers_are_kept_and_shown_by_system(tenant: Any) -> None:
    a, b = value(), value()
    resp = create(tenant, [{"system": OID, "value": a}, {"system": MRN, "value": b}])
    assert resp.status_code == 201, resp.text
    expected = [{"system": MRN, "value": b}, {"system": OID, "value": a}]
    assert resp.json()["identifiers"] == expected
    got = tenant.get(f"/v1/patients/{resp.json()['id']}")
    assert got.json()["identifiers"] == expected
    plain = tenant.post("/v1/patients", {"external_id": f"ext-{uuid.uuid4()}"})
    assert plain.json()["identifiers"] == []


def test_one_patient_per_system_and_value(tenant: Any, make_tenant: Any, count_rows: Any) -> None:
    taken = value()
    assert create(tenant, [{"system": MRN, "value": taken}]).status_code == 201
    before = count_rows("patients", tenant.org_id)
    resp = create(tenant, [{"system": MRN, "value": taken}])
    assert resp.status_code == 409
    assert taken not in resp.text  # PHI never in an error
    assert count_rows("patients", tenant.org_id) == before  # nothing half-stored
    # the same value in another system, or in another organisation, is another identifier
    assert create(tenant, [{"system": OID, "value": taken}]).status_code == 201
    assert create(make_tenant(), [{"system": MRN, "value": taken}]).status_code == 201


@pytest.mark.parametrize(
    ("identifiers", "pointer"),
    [
        ([{"system": MRN, "value": "A1"}, {"system": MRN, "value": "A1"}], "/identifiers"),
        (
            [{"system": "https://kap-outcomes.dev/fhir/sid/external-id", "value": "A1"}],
            "/identifiers",
        ),
        ([{"system": "mrn", "value": "A1"}], "/identifiers/0/system"),
        ([{"system": MRN, "value": " A1"}], "/identifiers/0/value"),
        ([{"system": MRN, "value": ""}], "/identifiers/0/value"),
        ([{"system": MRN, "value": "A1\u0007"}], "/identifiers/0/value"),
        ([{"system": MRN}], "/identifiers/0/value"),
        ([{"system": MRN, "value": "A1", "use": "usual"}], "/identifiers/0/use"),
        ([{"system": MRN, "value": f"A{i}"} for i in range(21)], "/identifiers"),
    ],
)
def test_bad_identifiers_are_422(
    tenant: Any, count_rows: Any, identifiers: Any, pointer: str
) -> None:
    resp = create(tenant, identifiers)
    assert resp.status_code == 422, resp.text
    pointers = [e.get("pointer") for e in resp.json()["errors"]]
    assert pointer in pointers, pointers
    assert count_rows("patients", tenant.org_id) == 0


def test_patch_replaces_the_list_under_if_match(tenant: Any) -> None:
    first, second, other = value(), value(), value()
    created = create(tenant, [{"system": MRN, "value": first}]).json()
    create(tenant, [{"system": MRN, "value": other}])
    etag = tenant.get(f"/v1/patients/{created['id']}").headers["ETag"]
    assert patch(tenant, created["id"], {"identifiers": []}, None).status_code == 428
    taken = patch(tenant, created["id"], {"identifiers": [{"system": MRN, "value": other}]}, etag)
    assert taken.status_code == 409 and other not in taken.text
    resp = patch(tenant, created["id"], {"identifiers": [{"system": OID, "value": second}]}, etag)
    assert resp.status_code == 200, resp.text
    assert resp.json()["identifiers"] == [{"system": OID, "value": second}]
    assert resp.headers["ETag"] != etag
    stale = patch(tenant, created["id"], {"identifiers": None}, etag)
    assert stale.status_code == 412
    cleared = patch(tenant, created["id"], {"identifiers": None}, resp.headers["ETag"])
    assert cleared.json()["identifiers"] == []
    # the value given up is free again
    assert create(tenant, [{"system": MRN, "value": first}]).status_code == 201
