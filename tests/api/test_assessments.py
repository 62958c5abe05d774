"""Assessments over HTTP: scoring, validation with JSON pointers, listing, reading back."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from kap_outcomes.auth.models import Role

PROBLEM = "application/problem+json"
EXAMPLE = [1, 2, 1, 0, 1, 2, 1, 0, 0]


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _ago(days: float = 0, **kw: float) -> str:
    return _iso(datetime.now(UTC) - timedelta(days=days, **kw))


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _phq9(items=None, **over):
    return {
        "instrument": "phq9",
        "items": list(EXAMPLE if items is None else items),
        "administered_at": "2026-03-02T15:04:05Z",
    } | over


def _submit(tenant, pid, payload, role=Role.clinician):
    return tenant.post(f"/v1/patients/{pid}/assessments", payload, role)


def _assert_problem(resp, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body = resp.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "instance"} <= body.keys()
    return body


# --- scoring through HTTP ----------------------------------------------------------------


def test_contract_example_is_scored(tenant, count_rows):
    pid = tenant.patient()
    resp = _submit(tenant, pid, _phq9(difficulty=1, source="patient"))
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["patient_id"] == pid
    assert body["instrument"] == "phq9" and body["items"] == EXAMPLE
    assert body["difficulty"] == 1 and body["source"] == "patient"
    assert body["valid"] is True
    assert body["total"] == 8 and body["raw_total"] == 8.0
    assert body["prorated"] is False and body["missing_items"] == 0
    assert body["severity"] == "mild"
    assert body["subscores"] == {"phq2": 3}
    assert "phq2_positive" in body["flags"] and "item9_negative" in body["flags"]
    assert body["risk"] is None
    assert body["alerts"] == []
    assert _parse(body["administered_at"]) == _parse("2026-03-02T15:04:05Z")
    assert abs(_parse(body["recorded_at"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert count_rows("assessments", tenant.org_id) == 1
    assert count_rows("alerts", tenant.org_id) == 0


def test_default_source_is_clinician(tenant):
    pid = tenant.patient()
    assert _submit(tenant, pid, _phq9()).json()["source"] == "clinician"


def test_difficulty_is_stored_but_never_scored(tenant):
    pid = tenant.patient()
    a = _submit(tenant, pid, _phq9(difficulty=3)).json()
    b = _submit(tenant, pid, _phq9()).json()
    assert a["difficulty"] == 3 and b["difficulty"] is None
    assert a["total"] == b["total"] == 8


def test_prorated_phq9_with_one_missing_item(tenant):
    pid = tenant.patient()
    # 8 answered summing to 10: 10 * 9 / 8 = 11.25 -> 11
    resp = _submit(tenant, pid, _phq9([1, 2, 1, 2, None, 2, 1, 1, 0]))
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["valid"] is True and body["prorated"] is True
    assert body["missing_items"] == 1
    assert body["raw_total"] == pytest.approx(11.25)
    assert body["total"] == 11 and body["severity"] == "moderate"
    assert body["items"][4] is None


def test_prorated_total_rounds_half_up(tenant):
    pid = tenant.patient()
    # 8 answered summing to 4: 4 * 9 / 8 = 4.5 -> 5 (mild), never banker's 4
    body = _submit(tenant, pid, _phq9([1, 1, 1, 1, 0, 0, 0, None, 0])).json()
    assert body["raw_total"] == pytest.approx(4.5)
    assert body["total"] == 5 and body["severity"] == "mild"


def test_phq9_with_three_missing_is_stored_invalid(tenant, count_rows):
    pid = tenant.patient()
    resp = _submit(tenant, pid, _phq9([3, 3, None, None, None, 3, 3, 3, 0]))
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["valid"] is False
    assert body["total"] is None and body["raw_total"] is None and body["severity"] is None
    assert body["missing_items"] == 3
    assert count_rows("assessments", tenant.org_id) == 1


def test_gad7_is_scored(tenant):
    pid = tenant.patient()
    resp = _submit(
        tenant,
        pid,
        {"instrument": "gad7", "items": [3, 3, 2, 2, 2, 2, 1], "administered_at": _ago(1)},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["total"] == 15 and body["severity"] == "severe"
    assert body["subscores"] == {"gad2": 6}
    assert body["risk"] is None and body["alerts"] == []


def test_cssrs_high_risk_opens_an_emergency_alert(tenant, count_rows):
    pid = tenant.patient()
    resp = _submit(
        tenant,
        pid,
        {"instrument": "cssrs", "items": [1, 1, 1, 1, 0, 0, None], "administered_at": _ago(0)},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["risk"] == "high"
    assert body["total"] is None and body["severity"] is None
    assert [(a["level"], a["kind"], a["status"]) for a in body["alerts"]] == [
        ("emergency", "cssrs_risk", "open")
    ]
    assert count_rows("alerts", tenant.org_id) == 1


def test_cssrs_all_no_is_risk_none_without_alert(tenant, count_rows):
    pid = tenant.patient()
    body = _submit(
        tenant,
        pid,
        {
            "instrument": "cssrs",
            "items": [0, 0, None, None, None, 0, None],
            "administered_at": _ago(0),
        },
    ).json()
    assert body["risk"] == "none" and body["alerts"] == []
    assert count_rows("alerts", tenant.org_id) == 0


def test_administered_at_within_clock_skew_is_accepted(tenant):
    pid = tenant.patient()
    resp = _submit(tenant, pid, _phq9(administered_at=_ago(minutes=-3)))
    assert resp.status_code == 201, resp.text


def test_administered_at_with_offset_is_normalised(tenant):
    pid = tenant.patient()
    body = _submit(tenant, pid, _phq9(administered_at="2026-03-02T17:04:05+02:00")).json()
    assert _parse(body["administered_at"]) == _parse("2026-03-02T15:04:05Z")


# --- patient tokens ----------------------------------------------------------------------


def test_patient_token_forces_source_patient(tenant):
    pid = tenant.patient()
    resp = tenant.client.post(
        f"/v1/patients/{pid}/assessments",
        json=_phq9(source="clinician"),
        headers=tenant.patient_token(pid),
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["source"] == "patient"
    stored = tenant.get(f"/v1/assessments/{resp.json()['id']}").json()
    assert stored["source"] == "patient"


def test_patient_token_reads_its_own_assessments(tenant):
    pid = tenant.patient()
    aid = _submit(tenant, pid, _phq9()).json()["id"]
    headers = tenant.patient_token(pid)
    listed = tenant.client.get(f"/v1/patients/{pid}/assessments", headers=headers)
    assert listed.status_code == 200 and [a["id"] for a in listed.json()["data"]] == [aid]
    one = tenant.client.get(f"/v1/assessments/{aid}", headers=headers)
    assert one.status_code == 200 and one.json()["id"] == aid


def test_patient_token_on_another_patient_is_404(tenant, count_rows):
    mine, theirs = tenant.patient(), tenant.patient()
    their_aid = _submit(tenant, theirs, _phq9()).json()["id"]
    headers = tenant.patient_token(mine)
    before = count_rows("assessments", tenant.org_id)

    post = tenant.client.post(f"/v1/patients/{theirs}/assessments", json=_phq9(), headers=headers)
    _assert_problem(post, 404)
    _assert_problem(tenant.client.get(f"/v1/patients/{theirs}/assessments", headers=headers), 404)
    _assert_problem(tenant.client.get(f"/v1/assessments/{their_aid}", headers=headers), 404)
    _assert_problem(tenant.client.get(f"/v1/patients/{theirs}", headers=headers), 404)
    assert count_rows("assessments", tenant.org_id) == before


# --- validation --------------------------------------------------------------------------


def _future() -> str:
    return _ago(-1)


BAD_INPUTS = [
    ("8-items", _phq9([0] * 8), "/items"),
    ("10-items", _phq9([0] * 10), "/items"),
    ("gad7-9-items", _phq9([0] * 9, instrument="gad7"), "/items"),
    ("empty-items", _phq9([]), "/items"),
    ("out-of-range-4", _phq9([0, 0, 0, 4, 0, 0, 0, 0, 0]), "/items/3"),
    ("out-of-range-neg", _phq9([0, 0, 0, -1, 0, 0, 0, 0, 0]), "/items/3"),
    ("float", _phq9([0, 0, 0, 1.0, 0, 0, 0, 0, 0]), "/items/3"),
    ("float-fraction", _phq9([0, 0, 0, 1.5, 0, 0, 0, 0, 0]), "/items/3"),
    ("string", _phq9([0, 0, 0, "1", 0, 0, 0, 0, 0]), "/items/3"),
    ("boolean", _phq9([0, 0, 0, True, 0, 0, 0, 0, 0]), "/items/3"),
    ("nested-list", _phq9([0, 0, 0, [1], 0, 0, 0, 0, 0]), "/items/3"),
    ("unknown-instrument", _phq9(instrument="phq10"), "/instrument"),
    ("null-instrument", _phq9(instrument=None), "/instrument"),
    ("missing-instrument", {"items": EXAMPLE, "administered_at": _ago(1)}, "/instrument"),
    ("naive-administered_at", _phq9(administered_at="2026-03-02T15:04:05"), "/administered_at"),
    ("future-administered_at", _phq9(administered_at=_future()), "/administered_at"),
    ("garbage-administered_at", _phq9(administered_at="last tuesday"), "/administered_at"),
    ("missing-administered_at", {"instrument": "phq9", "items": EXAMPLE}, "/administered_at"),
    ("unknown-field", _phq9(total=8), "/total"),
    ("items-not-a-list", _phq9(items=None) | {"items": "1,2,1,0,1,2,1,0,0"}, "/items"),
    ("items-object", _phq9() | {"items": {"1": 1}}, "/items"),
    ("items-null", _phq9() | {"items": None}, "/items"),
    ("difficulty-on-gad7", {"instrument": "gad7", "items": [0] * 7, "difficulty": 1,
                            "administered_at": _ago(1)}, "/difficulty"),
    ("difficulty-4", _phq9(difficulty=4), "/difficulty"),
    ("difficulty-float", _phq9(difficulty=1.0), "/difficulty"),
    ("cssrs-answer-2", {"instrument": "cssrs", "items": [0, 2, 0, 0, 0, 0, None],
                        "administered_at": _ago(1)}, "/items/1"),
    ("cssrs-6-answers", {"instrument": "cssrs", "items": [0] * 6, "administered_at": _ago(1)},
     "/items"),
    ("bad-source", _phq9(source="robot"), "/source"),
    ("long-session-id", _phq9(session_id="s" * 37), "/session_id"),
    # regressions: these were 500s (UTC conversion overflow; NUL refused by PostgreSQL)
    ("year-1-with-offset", _phq9(administered_at="0001-01-01T00:30:00+01:00"), "/administered_at"),
    ("nul-course-id", _phq9(course_id="a\u0000b"), "/course_id"),
    ("nul-session-id", _phq9(session_id="a\u0000b"), "/session_id"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "pointer"), [p[1:] for p in BAD_INPUTS], ids=[p[0] for p in BAD_INPUTS]
)
def test_bad_assessment_is_422_with_pointer(tenant, count_rows, payload, pointer):
    pid = tenant.patient()
    before = count_rows("assessments", tenant.org_id)
    resp = _submit(tenant, pid, payload)
    body = _assert_problem(resp, 422)
    assert body["instance"] == f"/v1/patients/{pid}/assessments"
    pointers = [e.get("pointer") for e in body["errors"]]
    assert pointer in pointers, body
    assert all(e["detail"] for e in body["errors"])
    assert count_rows("assessments", tenant.org_id) == before
    assert count_rows("alerts", tenant.org_id) == 0


def test_each_bad_item_gets_its_own_pointer(tenant, count_rows):
    pid = tenant.patient()
    resp = _submit(tenant, pid, _phq9([0, 7, 0, 0, -2, 0, 0, 0, 9]))
    body = _assert_problem(resp, 422)
    assert sorted(e["pointer"] for e in body["errors"]) == ["/items/1", "/items/4", "/items/8"]
    assert count_rows("assessments", tenant.org_id) == 0


@pytest.mark.parametrize(
    "content",
    [b"{bad", b"", b'{"instrument": "phq9",', b"[1, 2", b"\xff\xfe"],
    ids=["bad", "empty", "truncated", "truncated-list", "not-utf8"],
)
def test_malformed_json_is_422_pointing_at_the_document(tenant, count_rows, content):
    pid = tenant.patient()
    resp = tenant.client.post(
        f"/v1/patients/{pid}/assessments",
        content=content,
        headers=tenant.headers() | {"content-type": "application/json"},
    )
    body = _assert_problem(resp, 422)
    assert [e["pointer"] for e in body["errors"]] == [""]
    assert count_rows("assessments", tenant.org_id) == 0


@pytest.mark.parametrize("payload", [[], "phq9", 42, None])
def test_body_that_is_not_an_object_is_422(tenant, count_rows, payload):
    pid = tenant.patient()
    body = _assert_problem(_submit(tenant, pid, payload), 422)
    assert body["errors"] and all(e.get("pointer") is not None for e in body["errors"])
    assert count_rows("assessments", tenant.org_id) == 0


def test_errors_never_echo_the_rejected_value(tenant):
    pid = tenant.patient()
    resp = _submit(tenant, pid, _phq9([0, 0, 0, "secret-answer-xyz", 0, 0, 0, 0, 0]))
    _assert_problem(resp, 422)
    assert "secret-answer-xyz" not in resp.text


def test_unknown_course_or_session_is_422_and_stores_nothing(tenant, count_rows):
    pid = tenant.patient()
    for field in ("course_id", "session_id"):
        resp = _submit(
            tenant, pid, _phq9([0, 0, 0, 0, 0, 0, 0, 0, 2], **{field: str(uuid.uuid4())})
        )
        _assert_problem(resp, 422)
    assert count_rows("assessments", tenant.org_id) == 0
    assert count_rows("alerts", tenant.org_id) == 0


def test_assessment_for_unknown_patient_is_404(tenant, count_rows):
    resp = _submit(tenant, str(uuid.uuid4()), _phq9())
    _assert_problem(resp, 404)
    assert count_rows("assessments", tenant.org_id) == 0


# --- course linkage ----------------------------------------------------------------------


def test_assessment_joins_active_course_or_its_sessions_course(tenant):
    pid = tenant.patient()
    assert _submit(tenant, pid, _phq9()).json()["course_id"] is None
    session = tenant.post(
        f"/v1/patients/{pid}/sessions",
        {"kind": "dosing", "occurred_at": _ago(1), "dose": {"route": "iv", "amount_mg": 35}},
    ).json()
    linked = _submit(tenant, pid, _phq9(session_id=session["id"])).json()
    assert linked["session_id"] == session["id"]
    assert linked["course_id"] == session["course_id"]
    assert _submit(tenant, pid, _phq9()).json()["course_id"] == session["course_id"]


# --- listing -----------------------------------------------------------------------------


def _seed(tenant, pid):
    """Four assessments on known days; returns {name: (id, administered_at)}."""
    base = datetime(2026, 1, 10, 12, tzinfo=UTC)
    rows = {
        "phq9-d0": ("phq9", base),
        "gad7-d1": ("gad7", base + timedelta(days=1)),
        "phq9-d2": ("phq9", base + timedelta(days=2)),
        "phq9-d3": ("phq9", base + timedelta(days=3)),
    }
    out = {}
    for name, (instrument, at) in rows.items():
        items = EXAMPLE if instrument == "phq9" else [1] * 7
        resp = _submit(
            tenant, pid, {"instrument": instrument, "items": items, "administered_at": _iso(at)}
        )
        assert resp.status_code == 201, resp.text
        out[name] = (resp.json()["id"], at)
    return out


def _cursor(at: str, row_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([at, row_id])).decode().rstrip("=")


def _list_ids(tenant, pid, **params):
    resp = tenant.get(f"/v1/patients/{pid}/assessments", params=params)
    assert resp.status_code == 200, resp.text
    return [a["id"] for a in resp.json()["data"]]


def test_list_is_newest_first_and_filters(tenant):
    pid = tenant.patient()
    s = _seed(tenant, pid)
    ids = {k: v[0] for k, v in s.items()}
    assert _list_ids(tenant, pid) == [
        ids["phq9-d3"],
        ids["phq9-d2"],
        ids["gad7-d1"],
        ids["phq9-d0"],
    ]
    assert _list_ids(tenant, pid, instrument="gad7") == [ids["gad7-d1"]]
    assert _list_ids(tenant, pid, instrument="phq9") == [
        ids["phq9-d3"], ids["phq9-d2"], ids["phq9-d0"]
    ]  # fmt: skip
    assert _list_ids(tenant, pid, instrument="cssrs") == []

    d1, d2 = s["gad7-d1"][1], s["phq9-d2"][1]
    # since/until are inclusive
    assert _list_ids(tenant, pid, since=_iso(d1)) == [
        ids["phq9-d3"],
        ids["phq9-d2"],
        ids["gad7-d1"],
    ]
    assert _list_ids(tenant, pid, until=_iso(d1)) == [ids["gad7-d1"], ids["phq9-d0"]]
    assert _list_ids(tenant, pid, since=_iso(d1), until=_iso(d2)) == [
        ids["phq9-d2"], ids["gad7-d1"]
    ]  # fmt: skip
    assert _list_ids(tenant, pid, since=_iso(d1), until=_iso(d2), instrument="phq9") == [
        ids["phq9-d2"]
    ]
    # an offset other than Z is understood (and survives URL encoding of '+')
    shifted = (d1 + timedelta(hours=2)).replace(tzinfo=None).isoformat() + "+02:00"
    assert _list_ids(tenant, pid, until=shifted) == [ids["gad7-d1"], ids["phq9-d0"]]


def test_list_rows_carry_scores_and_alerts(tenant):
    pid = tenant.patient()
    aid = _submit(tenant, pid, _phq9([0, 0, 0, 0, 0, 0, 0, 0, 1])).json()["id"]
    row = tenant.get(f"/v1/patients/{pid}/assessments").json()["data"][0]
    assert row["id"] == aid and row["total"] == 1 and row["severity"] == "minimal"
    assert [(a["level"], a["kind"]) for a in row["alerts"]] == [("review", "phq9_item9")]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"since": "2026-01-12T00:00:00Z", "until": "2026-01-11T00:00:00Z"}, "since"),
        ({"since": "2026-01-12T00:00:00"}, "since"),
        ({"until": "2026-01-12T00:00:00"}, "until"),
        ({"since": "yesterday"}, "since"),
        ({"instrument": "phq10"}, "instrument"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"cursor": "forged"}, "cursor"),
        # regressions: edge-of-range times were 500s
        ({"since": "0001-01-01T00:00:00+01:00"}, "since"),
        ({"until": "9999-12-31T23:59:59-01:00"}, "until"),
        ({"cursor": _cursor("0001-01-01T00:00:00+01:00", str(uuid.uuid4()))}, "cursor"),
        ({"cursor": _cursor("9999-12-31T23:59:59-01:00", str(uuid.uuid4()))}, "cursor"),
        ({"cursor": _cursor("2026-01-01T00:00:00+00:00", "a\u0000b")}, "cursor"),
    ],
)
def test_bad_list_parameters_are_422(tenant, params, parameter):
    pid = tenant.patient()
    resp = tenant.get(f"/v1/patients/{pid}/assessments", params=params)
    body = _assert_problem(resp, 422)
    assert parameter in [e.get("parameter") for e in body["errors"]], body


def test_cursor_paging_newest_first(tenant):
    pid = tenant.patient()
    base = datetime(2026, 2, 1, 8, tzinfo=UTC)
    ids = []
    # two share a timestamp: the id breaks the tie, nothing is lost or repeated
    for hours in (0, 1, 1, 3, 4):
        at = base + timedelta(hours=hours)
        resp = _submit(tenant, pid, _phq9(administered_at=_iso(at)))
        assert resp.status_code == 201, resp.text
        ids.append((resp.json()["administered_at"], resp.json()["id"]))

    seen, sizes, cursor = [], [], None
    for _ in range(10):
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        resp = tenant.get(f"/v1/patients/{pid}/assessments", params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        sizes.append(len(body["data"]))
        seen += [a["id"] for a in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sizes == [2, 2, 1]
    assert len(set(seen)) == 5 and set(seen) == {i for _, i in ids}
    times = [_parse(tenant.get(f"/v1/assessments/{i}").json()["administered_at"]) for i in seen]
    assert times == sorted(times, reverse=True)


def test_list_for_unknown_patient_is_404(tenant):
    _assert_problem(tenant.get(f"/v1/patients/{uuid.uuid4()}/assessments"), 404)


# --- get by id ---------------------------------------------------------------------------


def test_get_assessment_by_id(tenant):
    pid = tenant.patient()
    created = _submit(tenant, pid, _phq9([0, 0, 0, 0, 0, 0, 0, 0, 2])).json()
    resp = tenant.get(f"/v1/assessments/{created['id']}", Role.integration)
    assert resp.status_code == 200, resp.text
    got = resp.json()
    assert got == created


def test_get_unknown_assessment_is_404(tenant):
    _assert_problem(tenant.get(f"/v1/assessments/{uuid.uuid4()}"), 404)


def test_get_another_organisations_assessment_is_404(tenant, make_tenant):
    other = make_tenant()
    opid = other.patient()
    aid = _submit(other, opid, _phq9()).json()["id"]
    for role in (Role.admin, Role.clinician, Role.integration):
        body = _assert_problem(tenant.get(f"/v1/assessments/{aid}", role), 404)
        assert aid not in body["detail"]
    assert other.get(f"/v1/assessments/{aid}").status_code == 200
