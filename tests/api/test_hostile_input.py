"""Hostile input: every case a clean 4xx problem document, and nothing stored."""

from __future__ import annotations

import base64

import pytest

PHQ9 = {
    "instrument": "phq9",
    "items": [1, 2, 1, 0, 1, 2, 1, 0, 0],
    "administered_at": "2026-03-02T15:04:05Z",
}
ONE_MIB = 1024 * 1024


def _problem(resp, status):
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["status"] == status
    return body


def _stored(count_rows, org_id):
    return sum(
        count_rows(t, org_id)
        for t in ("patients", "courses", "care_sessions", "assessments", "alerts")
    )


@pytest.fixture
def patient(tenant):
    return tenant.patient()


def _paths(pid):
    return ["/v1/patients", f"/v1/patients/{pid}/assessments", f"/v1/patients/{pid}/courses"]


def test_a_body_over_the_limit_is_413(tenant, patient, count_rows):
    before = _stored(count_rows, tenant.org_id)
    big = b'{"external_id": "' + b"x" * ONE_MIB + b'"}'
    for path in _paths(patient):
        resp = tenant.client.post(
            path, content=big, headers=tenant.headers() | {"content-type": "application/json"}
        )
        _problem(resp, 413)
    assert _stored(count_rows, tenant.org_id) == before


def test_a_chunked_body_over_the_limit_is_413(tenant, patient, count_rows):
    before = _stored(count_rows, tenant.org_id)

    def chunks():
        yield b'{"external_id": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    for path in _paths(patient):
        resp = tenant.client.post(
            path, content=chunks(), headers=tenant.headers() | {"content-type": "application/json"}
        )
        _problem(resp, 413)
    assert _stored(count_rows, tenant.org_id) == before


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", ""]
)
def test_a_body_that_is_not_json_is_415(tenant, patient, count_rows, content_type):
    before = _stored(count_rows, tenant.org_id)
    for path in _paths(patient):
        headers = tenant.headers() | ({"content-type": content_type} if content_type else {})
        resp = tenant.client.post(path, content=b'{"external_id": "x"}', headers=headers)
        _problem(resp, 415)
    assert _stored(count_rows, tenant.org_id) == before


def test_deeply_nested_json_is_a_clean_4xx(tenant, patient, count_rows):
    before = _stored(count_rows, tenant.org_id)
    deep = b'{"external_id": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    for path in _paths(patient):
        resp = tenant.client.post(
            path, content=deep, headers=tenant.headers() | {"content-type": "application/json"}
        )
        assert resp.status_code in (400, 422), resp.text
        assert resp.headers["content-type"] == "application/problem+json"
    assert _stored(count_rows, tenant.org_id) == before


@pytest.mark.parametrize(
    "label",
    [
        "bell\u0007",
        "nul\u0000",
        "escape\u001b[31m",
        "del\u007f",
        "c1\u0085",
        "bidi override \u202eevil",
        "isolate \u2066x\u2069",
        "x" * 201,
    ],
)
def test_control_characters_and_overlong_text_are_422(tenant, patient, count_rows, label):
    resp = tenant.post(f"/v1/patients/{patient}/courses", {"label": label})
    body = _problem(resp, 422)
    assert [e["pointer"] for e in body["errors"]] == ["/label"]
    assert label not in resp.text
    assert count_rows("courses", tenant.org_id) == 0


@pytest.mark.parametrize(
    "label", ["Kurs 2 – Auffrischung", "line one\nline two\tindented", "🙂 booster", "é" * 200]
)
def test_ordinary_unicode_text_is_kept_exactly(tenant, patient, label):
    resp = tenant.post(f"/v1/patients/{patient}/courses", {"label": label})
    assert resp.status_code == 201, resp.text
    assert resp.json()["label"] == label


def test_a_lone_surrogate_is_refused(tenant, patient, count_rows):
    for path, body in [
        (f"/v1/patients/{patient}/courses", b'{"label": "x\\ud800y"}'),
        ("/v1/patients", b'{"external_id": "x\\ud800y"}'),
    ]:
        resp = tenant.client.post(
            path, content=body, headers=tenant.headers() | {"content-type": "application/json"}
        )
        assert resp.status_code in (400, 422), resp.text
    assert count_rows("courses", tenant.org_id) == 0


@pytest.mark.parametrize("limit", ["0", "-1", "501", "99999999999999999999999", "1e3", "abc"])
def test_limits_out_of_range_are_422(tenant, patient, limit):
    for path in ["/v1/patients", f"/v1/patients/{patient}/assessments", "/v1/alerts"]:
        body = _problem(tenant.get(f"{path}?limit={limit}"), 422)
        assert body["errors"][0]["parameter"] == "limit"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        _b64(b"[]"),
        _b64(b'["2026-01-01T00:00:00", "x"]'),  # no offset
        _b64(b'["2026-01-01T00:00:00Z", 42]'),
        _b64(b'{"a": 1}'),
        _b64(b'["2026-01-01T00:00:00Z", "' + b"x" * 100 + b'"]'),
        _b64(b"\xff\xfe"),
        "%00",
        "x" * 257,
    ],
)
def test_forged_cursors_are_422(tenant, patient, cursor):
    for path in ["/v1/patients", f"/v1/patients/{patient}/assessments", "/v1/alerts"]:
        resp = tenant.client.get(path, params={"cursor": cursor}, headers=tenant.headers())
        body = _problem(resp, 422)
        assert body["errors"][0]["parameter"] == "cursor"


def test_a_forged_cursor_never_reaches_another_organisation(tenant, make_tenant):
    other = make_tenant()
    for n in range(3):
        other.patient(f"theirs-{n}")
    forged = _b64(b'["1970-01-01T00:00:00+00:00", "0"]')
    resp = tenant.get(f"/v1/patients?cursor={forged}")
    assert resp.status_code == 200
    assert resp.json()["data"] == []
