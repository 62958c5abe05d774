"""Patients over HTTP: creation, uniqueness of external_id, listing and cursor paging."""

from __future__ import annotations

import base64
import uuid

import orjson
import pytest

from kap_outcomes.auth.models import Role

PROBLEM = "application/problem+json"


def _ext() -> str:
    return f"ext-{uuid.uuid4()}"


def _assert_problem(resp, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body = resp.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "instance"} <= body.keys()
    return body


def test_create_patient_returns_201_and_pseudonymous_fields(tenant, count_rows):
    resp = tenant.post("/v1/patients", {"external_id": "MRN-00042"})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["external_id"] == "MRN-00042"
    uuid.UUID(body["id"])
    assert body["created_at"].endswith(("Z", "+00:00"))
    assert body["active_course_id"] is None
    assert "name" not in body and "birth_date" not in body
    assert count_rows("patients", tenant.org_id) == 1


@pytest.mark.parametrize("role", [Role.admin, Role.clinician, Role.integration])
def test_every_staff_role_may_create_a_patient(tenant, role):
    resp = tenant.post("/v1/patients", {"external_id": _ext()}, role)
    assert resp.status_code == 201, resp.text


@pytest.mark.parametrize(
    "extra",
    [
        {"name": "Jane Doe"},
        {"birth_date": "1980-01-01"},
        {"date_of_birth": "1980-01-01"},
    ],
)
def test_identifying_fields_are_refused(tenant, count_rows, extra):
    field = next(iter(extra))
    resp = tenant.post("/v1/patients", {"external_id": _ext(), **extra})
    body = _assert_problem(resp, 422)
    assert f"/{field}" in [e.get("pointer") for e in body["errors"]]
    # No PHI in the error: the rejected value is not echoed.
    assert extra[field] not in resp.text
    assert count_rows("patients", tenant.org_id) == 0


def test_duplicate_external_id_is_409(tenant, count_rows):
    ext = _ext()
    assert tenant.post("/v1/patients", {"external_id": ext}).status_code == 201
    resp = tenant.post("/v1/patients", {"external_id": ext}, Role.integration)
    _assert_problem(resp, 409)
    assert count_rows("patients", tenant.org_id) == 1


def test_same_external_id_is_allowed_in_another_organisation(tenant, make_tenant):
    other = make_tenant()
    ext = _ext()
    first = tenant.post("/v1/patients", {"external_id": ext})
    second = other.post("/v1/patients", {"external_id": ext})
    assert first.status_code == 201 and second.status_code == 201, second.text
    assert first.json()["id"] != second.json()["id"]


@pytest.mark.parametrize(
    "external_id",
    [
        "",
        "x" * 129,
        "has space",
        "semi;colon",
        "slash/inside",
        "émile",
        "line\nbreak",
        None,
        42,
    ],
    ids=["empty", "too-long", "space", "semicolon", "slash", "non-ascii", "newline", "null", "int"],
)
def test_bad_external_id_is_422(tenant, count_rows, external_id):
    resp = tenant.post("/v1/patients", {"external_id": external_id})
    body = _assert_problem(resp, 422)
    assert [e.get("pointer") for e in body["errors"]] == ["/external_id"]
    assert count_rows("patients", tenant.org_id) == 0


def test_external_id_of_maximum_length_and_allowed_punctuation(tenant):
    for ext in ("x" * 128, "urn:mrn:A-1_2.3"):
        resp = tenant.post("/v1/patients", {"external_id": ext})
        assert resp.status_code == 201, resp.text
        assert resp.json()["external_id"] == ext


def test_missing_body_is_422(tenant):
    resp = tenant.client.post("/v1/patients", headers=tenant.headers())
    body = _assert_problem(resp, 422)
    assert body["errors"][0]["pointer"] == ""


def test_list_filters_by_external_id(tenant):
    ids = {ext: tenant.patient(ext) for ext in (_ext(), _ext(), _ext())}
    target = next(iter(ids))
    resp = tenant.get("/v1/patients", params={"external_id": target})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [p["id"] for p in body["data"]] == [ids[target]]
    assert body["data"][0]["external_id"] == target
    assert body["next_cursor"] is None

    none = tenant.get("/v1/patients", params={"external_id": "no-such-patient"})
    assert none.status_code == 200 and none.json() == {"data": [], "next_cursor": None}


def test_list_without_filter_returns_all_of_the_organisation(tenant):
    created = {tenant.patient() for _ in range(3)}
    body = tenant.get("/v1/patients").json()
    assert {p["id"] for p in body["data"]} == created
    assert body["next_cursor"] is None


def test_cursor_paging_over_three_pages(tenant):
    created = [tenant.patient() for _ in range(5)]
    seen: list[str] = []
    pages = 0
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        resp = tenant.get("/v1/patients", params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        pages += 1
        assert len(body["data"]) == (2 if pages < 3 else 1)
        seen += [p["id"] for p in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert pages < 3, "more pages than rows allow"
    assert pages == 3
    assert len(seen) == len(set(seen)) == 5
    assert seen == created  # oldest first, in creation order


def test_cursor_is_stable_under_inserts(tenant):
    first = [tenant.patient() for _ in range(3)]
    page1 = tenant.get("/v1/patients", params={"limit": 2}).json()
    later = tenant.patient()
    page2 = tenant.get("/v1/patients", params={"limit": 2, "cursor": page1["next_cursor"]}).json()
    got = [p["id"] for p in page1["data"] + page2["data"]]
    assert got == [*first, later]
    assert page2["next_cursor"] is None


def _forged_cursors() -> list[str]:
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return [
        "not-a-cursor",
        "!!!!",
        b64(b"{bad json"),
        b64(orjson.dumps(["2026-03-02T15:04:05", "abc"])),  # naive time
        b64(orjson.dumps(["2026-03-02T15:04:05+00:00"])),  # one element
        b64(orjson.dumps([1, 2])),
        b64(orjson.dumps(["yesterday", "abc"])),
        b64(orjson.dumps(["2026-03-02T15:04:05+00:00", "x" * 37])),
        "x" * 257,
        # regressions: were 500s (UTC overflow; NUL refused by PostgreSQL)
        b64(orjson.dumps(["0001-01-01T00:00:00+01:00", str(uuid.uuid4())])),
        b64(orjson.dumps(["9999-12-31T23:59:59-01:00", str(uuid.uuid4())])),
        b64(orjson.dumps(["2026-03-02T15:04:05+00:00", "a\u0000b"])),
    ]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"external_id": "a\u0000b"}, "external_id"),  # was a 500 on PostgreSQL
        ({"external_id": ""}, "external_id"),
        *[({"cursor": c}, "cursor") for c in _forged_cursors()],
    ],
)
def test_bad_paging_parameters_are_422_with_parameter(tenant, params, parameter):
    resp = tenant.get("/v1/patients", params=params)
    body = _assert_problem(resp, 422)
    assert parameter in [e.get("parameter") for e in body["errors"]]
    assert all("pointer" not in e for e in body["errors"])


def test_limit_500_is_accepted(tenant):
    tenant.patient()
    resp = tenant.get("/v1/patients", params={"limit": 500})
    assert resp.status_code == 200 and len(resp.json()["data"]) == 1


def test_get_one_patient(tenant):
    ext = _ext()
    pid = tenant.patient(ext)
    resp = tenant.get(f"/v1/patients/{pid}", Role.integration)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["id"] == pid and body["external_id"] == ext
    assert body["active_course_id"] is None


def test_get_patient_shows_active_course(tenant):
    pid = tenant.patient()
    course = tenant.post(f"/v1/patients/{pid}/courses", {})
    assert course.status_code == 201, course.text
    body = tenant.get(f"/v1/patients/{pid}").json()
    assert body["active_course_id"] == course.json()["id"]


@pytest.mark.parametrize("pid", [str(uuid.uuid4()), "nope"])
def test_unknown_patient_is_404(tenant, pid):
    resp = tenant.get(f"/v1/patients/{pid}")
    body = _assert_problem(resp, 404)
    assert body["instance"] == f"/v1/patients/{pid}"
