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


# --- forms that contradict themselves, and numbers outside the grammar (issue #9) -----------

ITEM9_THREE = b"[0, 0, 0, 0, 0, 0, 0, 0, 3]"
ITEM9_ZERO = b"[0, 0, 0, 0, 0, 0, 0, 0, 0]"


def _raw(tenant, path, body: bytes, headers=None):
    return tenant.client.post(
        path,
        content=body,
        headers=tenant.headers() | {"content-type": "application/json"} | (headers or {}),
    )


def _no_assessment_without_its_alert(count_rows, org_id):
    assert count_rows("assessments", org_id) == 0
    assert count_rows("alerts", org_id) == 0


@pytest.mark.parametrize(
    ("items", "pointer"),
    [
        # the safety answer first, a harmless copy after it: a last-wins parser drops the 3
        (b'"items": ' + ITEM9_THREE + b', "items": ' + ITEM9_ZERO, "/items"),
        (b'"items": ' + ITEM9_ZERO + b', "items": ' + ITEM9_THREE, "/items"),
    ],
)
def test_an_assessment_with_a_repeated_key_is_refused(tenant, patient, count_rows, items, pointer):
    body = (
        b'{"instrument": "phq9", '
        + items
        + b', "administered_at": "2026-03-02T15:04:05Z", "source": "clinician"}'
    )
    resp = _raw(tenant, f"/v1/patients/{patient}/assessments", body)
    problem = _problem(resp, 422)
    assert [e["pointer"] for e in problem["errors"]] == [pointer]
    assert "more than once" in problem["errors"][0]["detail"]
    _no_assessment_without_its_alert(count_rows, tenant.org_id)


@pytest.mark.parametrize(
    ("path", "body", "pointer"),
    [
        ("/v1/patients", b'{"external_id": "a", "external_id": "b"}', "/external_id"),
        (
            "/v1/patients/{pid}/courses",
            b'{"label": "first", "induction_doses": 2, "label": "second"}',
            "/label",
        ),
        (
            "/v1/patients/{pid}/sessions",
            b'{"kind": "dosing", "occurred_at": "2026-03-02T15:04:05Z", '
            b'"dose": {"route": "iv", "amount_mg": 35, "amount_mg": 350}}',
            "/dose/amount_mg",
        ),
        (
            "/v1/patients/{pid}/assessments",
            b'{"instrument": "phq9", "instrument": "gad7", "items": [0, 0, 0, 0, 0, 0, 0], '
            b'"administered_at": "2026-03-02T15:04:05Z"}',
            "/instrument",
        ),
        # a key whose name needs escaping in a JSON Pointer (RFC 6901)
        ("/v1/patients", b'{"external_id": "a", "a/b~c": 1, "a/b~c": 2}', "/a~1b~0c"),
    ],
)
def test_a_repeated_key_in_any_body_is_a_422_naming_it(
    tenant, patient, count_rows, path, body, pointer
):
    before = _stored(count_rows, tenant.org_id)
    resp = _raw(tenant, path.format(pid=patient), body)
    problem = _problem(resp, 422)
    assert [e["pointer"] for e in problem["errors"]] == [pointer]
    assert _stored(count_rows, tenant.org_id) == before


def test_a_repeated_key_in_a_correction_is_refused_and_nothing_changes(tenant, patient):
    created = tenant.post(
        f"/v1/patients/{patient}/assessments",
        {"instrument": "phq9", "items": [1] * 9, "administered_at": "2026-03-02T15:04:05Z"},
    )
    assert created.status_code == 201, created.text
    aid = created.json()["id"]
    body = b'{"items": ' + ITEM9_THREE + b', "reason": "typo", "items": ' + ITEM9_ZERO + b"}"
    resp = _raw(tenant, f"/v1/assessments/{aid}/amend", body, {"If-Match": '"1"'})
    problem = _problem(resp, 422)
    assert [e["pointer"] for e in problem["errors"]] == ["/items"]
    current = tenant.get(f"/v1/assessments/{aid}").json()
    assert current["version"] == 1 and current["items"] == [1] * 9


def test_repeated_keys_deep_in_a_body_are_each_named(tenant, patient, count_rows):
    body = (
        b'{"kind": "dosing", "occurred_at": "2026-03-02T15:04:05Z", "kind": "booster", '
        b'"dose": {"route": "iv", "route": "im", "amount_mg": 35}}'
    )
    resp = _raw(tenant, f"/v1/patients/{patient}/sessions", body)
    problem = _problem(resp, 422)
    assert sorted(e["pointer"] for e in problem["errors"]) == ["/dose/route", "/kind"]
    assert count_rows("care_sessions", tenant.org_id) == 0


HUGE_EXPONENT = b"1e200000"
LONG_DIGITS = b"1" + b"0" * 3999
HOSTILE_NUMBERS = [HUGE_EXPONENT, b"-1E+400", LONG_DIGITS, b"3" + b"0" * 5000, b"0." + b"3" * 100]


@pytest.mark.parametrize(
    "number", HOSTILE_NUMBERS, ids=["1e200000", "-1E+400", "4000", "5001", "frac"]
)
@pytest.mark.parametrize(
    ("path", "template", "pointer"),
    [
        (
            "/v1/patients/{pid}/assessments",
            b'{"instrument": "phq9", "items": [0, 0, 0, 0, 0, 0, 0, 0, N], '
            b'"administered_at": "2026-03-02T15:04:05Z"}',
            "/items/8",
        ),
        (
            "/v1/patients/{pid}/assessments",
            b'{"instrument": "phq9", "items": [0, 0, 0, 0, 0, 0, 0, 0, 3], "difficulty": N, '
            b'"administered_at": "2026-03-02T15:04:05Z"}',
            "/difficulty",
        ),
        (
            "/v1/patients/{pid}/sessions",
            b'{"kind": "dosing", "occurred_at": "2026-03-02T15:04:05Z", '
            b'"dose": {"route": "iv", "amount_mg": N}}',
            "/dose/amount_mg",
        ),
        ("/v1/patients/{pid}/courses", b'{"induction_doses": N}', "/induction_doses"),
    ],
)
def test_numbers_outside_the_grammar_are_refused_by_their_form(
    tenant, patient, count_rows, number, path, template, pointer
):
    before = _stored(count_rows, tenant.org_id)
    resp = _raw(tenant, path.format(pid=patient), template.replace(b"N", number))
    problem = _problem(resp, 422)
    assert [e["pointer"] for e in problem["errors"]] == [pointer]
    assert "digits" in problem["errors"][0]["detail"]
    assert number.decode()[:20] not in resp.text  # never echoed
    assert _stored(count_rows, tenant.org_id) == before


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_number_constants_are_refused(tenant, patient, count_rows, constant):
    body = (
        b'{"kind": "dosing", "occurred_at": "2026-03-02T15:04:05Z", '
        b'"dose": {"route": "iv", "amount_mg": ' + constant + b"}}"
    )
    resp = _raw(tenant, f"/v1/patients/{patient}/sessions", body)
    problem = _problem(resp, 422)
    assert [e["pointer"] for e in problem["errors"]] == ["/dose/amount_mg"]
    assert count_rows("care_sessions", tenant.org_id) == 0


@pytest.mark.parametrize(
    "number", [b"1.5", b"35", b"35.0", b"3.5e1", b"350E-1", b"12345678901234567890"]
)
def test_ordinary_numbers_in_every_form_pass(tenant, patient, number):
    body = (
        b'{"kind": "dosing", "occurred_at": "2026-03-02T15:04:05Z", '
        b'"dose": {"route": "iv", "amount_mg": ' + number + b"}}"
    )
    resp = _raw(tenant, f"/v1/patients/{patient}/sessions", body)
    if number == b"12345678901234567890":  # within the grammar, outside the dose's range
        problem = _problem(resp, 422)
        assert "digits" not in problem["errors"][0]["detail"]
    else:
        assert resp.status_code == 201, resp.text


def test_nesting_beyond_the_bound_is_refused_with_its_place(tenant, patient, count_rows):
    nested = b"[" * 40 + b"]" * 40
    before = count_rows("patients", tenant.org_id)
    resp = _raw(tenant, "/v1/patients", b'{"external_id": "x", "extra": ' + nested + b"}")
    problem = _problem(resp, 422)
    pointer = problem["errors"][0]["pointer"]
    assert pointer.startswith("/extra/0/0/")
    assert "nested deeper than" in problem["errors"][0]["detail"]
    assert count_rows("patients", tenant.org_id) == before


def test_a_body_of_too_many_values_is_refused_before_any_route_reads_it(
    tenant, patient, count_rows
):
    # well within the size limit (about 40 KB), but 20,000 values
    many = b"[" + b",".join([b"0"] * 20_000) + b"]"
    before = _stored(count_rows, tenant.org_id)
    for path in _paths(patient):
        resp = _raw(tenant, path, b'{"external_id": "x", "items": ' + many + b"}")
        problem = _problem(resp, 422)
        assert problem["errors"][0]["pointer"] == ""
        assert "values" in problem["errors"][0]["detail"]
    assert _stored(count_rows, tenant.org_id) == before


@pytest.mark.parametrize("count", [65, 5_000])
def test_more_items_than_any_instrument_has_are_refused(tenant, patient, count_rows, count):
    body = {"instrument": "phq9", "items": [0] * count, "administered_at": "2026-03-02T15:04:05Z"}
    problem = _problem(tenant.post(f"/v1/patients/{patient}/assessments", body), 422)
    assert [e["pointer"] for e in problem["errors"]] == ["/items"]
    _no_assessment_without_its_alert(count_rows, tenant.org_id)
