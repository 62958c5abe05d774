"""Courses and sessions over HTTP."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from kap_outcomes.auth.models import Role

PROBLEM = "application/problem+json"


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _ago(days: float = 0, **kw: float) -> str:
    return _iso(datetime.now(UTC) - timedelta(days=days, **kw))


def _assert_problem(resp, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body = resp.json()
    assert body["status"] == status
    return body


def _pointers(body: dict) -> list[str | None]:
    return [e.get("pointer") for e in body.get("errors", [])]


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


# --- courses -----------------------------------------------------------------------------


def test_create_course_with_defaults(tenant, count_rows):
    pid = tenant.patient()
    before = datetime.now(UTC)
    resp = tenant.post(f"/v1/patients/{pid}/courses", {})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["patient_id"] == pid
    assert body["induction_doses"] == 6
    assert body["label"] is None
    assert body["active"] is True and body["ended_at"] is None
    started = _parse(body["started_at"])
    assert before - timedelta(seconds=5) <= started <= datetime.now(UTC) + timedelta(seconds=5)
    assert count_rows("courses", tenant.org_id) == 1


def test_create_course_with_explicit_fields(tenant):
    pid = tenant.patient()
    started = "2026-01-05T09:00:00+01:00"
    resp = tenant.post(
        f"/v1/patients/{pid}/courses",
        {"started_at": started, "induction_doses": 4, "label": "spring"},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["induction_doses"] == 4 and body["label"] == "spring"
    assert _parse(body["started_at"]) == _parse(started)


@pytest.mark.parametrize(
    ("payload", "pointer"),
    [
        ({"induction_doses": 0}, "/induction_doses"),
        ({"induction_doses": 51}, "/induction_doses"),
        ({"induction_doses": "6"}, "/induction_doses"),
        ({"induction_doses": 6.0}, "/induction_doses"),
        ({"started_at": "2026-01-05T09:00:00"}, "/started_at"),
        ({"started_at": "tomorrow"}, "/started_at"),
        ({"label": "x" * 201}, "/label"),
        ({"colour": "blue"}, "/colour"),
        # regressions: were 500s (UTC overflow; NUL refused by PostgreSQL)
        ({"started_at": "0001-01-01T00:30:00+01:00"}, "/started_at"),
        ({"label": "a\u0000b"}, "/label"),
    ],
)
def test_bad_course_is_422(tenant, count_rows, payload, pointer):
    pid = tenant.patient()
    body = _assert_problem(tenant.post(f"/v1/patients/{pid}/courses", payload), 422)
    assert pointer in _pointers(body)
    assert count_rows("courses", tenant.org_id) == 0


def test_future_course_start_is_422(tenant):
    pid = tenant.patient()
    resp = tenant.post(f"/v1/patients/{pid}/courses", {"started_at": _ago(-1)})
    assert _pointers(_assert_problem(resp, 422)) == ["/started_at"]


def test_second_course_closes_the_first(tenant):
    pid = tenant.patient()
    first = tenant.post(f"/v1/patients/{pid}/courses", {"label": "one"}).json()
    second = tenant.post(f"/v1/patients/{pid}/courses", {"label": "two"})
    assert second.status_code == 201, second.text
    second = second.json()

    resp = tenant.get(f"/v1/patients/{pid}/courses")
    assert resp.status_code == 200, resp.text
    courses = {c["id"]: c for c in resp.json()}
    assert set(courses) == {first["id"], second["id"]}
    active = [c for c in courses.values() if c["active"]]
    assert [c["id"] for c in active] == [second["id"]]
    assert courses[first["id"]]["ended_at"] is not None
    assert courses[second["id"]]["ended_at"] is None
    assert tenant.get(f"/v1/patients/{pid}").json()["active_course_id"] == second["id"]


def test_course_for_unknown_patient_is_404(tenant, count_rows):
    _assert_problem(tenant.post(f"/v1/patients/{uuid.uuid4()}/courses", {}), 404)
    _assert_problem(tenant.get(f"/v1/patients/{uuid.uuid4()}/courses"), 404)
    assert count_rows("courses", tenant.org_id) == 0


# --- sessions ----------------------------------------------------------------------------


def _dosing(**over):
    body = {"kind": "dosing", "occurred_at": _ago(1), "dose": {"route": "im", "amount_mg": 50}}
    return body | over


def test_dosing_session_without_course_opens_a_course(tenant, count_rows):
    pid = tenant.patient()
    occurred = _ago(2)
    resp = tenant.post(f"/v1/patients/{pid}/sessions", _dosing(occurred_at=occurred))
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["kind"] == "dosing" and body["patient_id"] == pid
    assert body["dose"] == {"route": "im", "amount_mg": 50.0}
    assert _parse(body["occurred_at"]) == _parse(occurred)
    assert body["course_id"] is not None

    courses = tenant.get(f"/v1/patients/{pid}/courses").json()
    assert [c["id"] for c in courses] == [body["course_id"]]
    assert courses[0]["active"] is True
    assert _parse(courses[0]["started_at"]) == _parse(occurred)
    assert count_rows("courses", tenant.org_id) == 1
    assert count_rows("care_sessions", tenant.org_id) == 1


def test_booster_session_without_course_opens_a_course(tenant):
    pid = tenant.patient()
    resp = tenant.post(
        f"/v1/patients/{pid}/sessions",
        _dosing(kind="booster", dose={"route": "sublingual", "amount_mg": 200}),
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["course_id"] is not None


def test_non_dose_session_without_course_opens_none(tenant, count_rows):
    pid = tenant.patient()
    resp = tenant.post(f"/v1/patients/{pid}/sessions", {"kind": "intake", "occurred_at": _ago(3)})
    assert resp.status_code == 201, resp.text
    assert resp.json()["course_id"] is None and resp.json()["dose"] is None
    assert count_rows("courses", tenant.org_id) == 0


def test_session_joins_the_active_course(tenant, count_rows):
    pid = tenant.patient()
    course = tenant.post(f"/v1/patients/{pid}/courses", {}).json()
    for payload in (_dosing(), {"kind": "integration", "occurred_at": _ago(0.5)}):
        resp = tenant.post(f"/v1/patients/{pid}/sessions", payload)
        assert resp.status_code == 201, resp.text
        assert resp.json()["course_id"] == course["id"]
    assert count_rows("courses", tenant.org_id) == 1


def test_session_with_explicit_closed_course(tenant):
    pid = tenant.patient()
    old = tenant.post(f"/v1/patients/{pid}/courses", {}).json()
    tenant.post(f"/v1/patients/{pid}/courses", {})
    resp = tenant.post(f"/v1/patients/{pid}/sessions", _dosing(course_id=old["id"]))
    assert resp.status_code == 201, resp.text
    assert resp.json()["course_id"] == old["id"]


@pytest.mark.parametrize("kind", ["dosing", "booster"])
def test_dose_is_required_for_dose_sessions(tenant, count_rows, kind):
    pid = tenant.patient()
    resp = tenant.post(f"/v1/patients/{pid}/sessions", {"kind": kind, "occurred_at": _ago(1)})
    assert _pointers(_assert_problem(resp, 422)) == ["/dose"]
    assert count_rows("care_sessions", tenant.org_id) == 0
    assert count_rows("courses", tenant.org_id) == 0


@pytest.mark.parametrize("kind", ["intake", "preparation", "integration", "follow_up"])
def test_dose_is_refused_on_other_sessions(tenant, count_rows, kind):
    pid = tenant.patient()
    resp = tenant.post(
        f"/v1/patients/{pid}/sessions",
        {"kind": kind, "occurred_at": _ago(1), "dose": {"route": "im", "amount_mg": 50}},
    )
    assert _pointers(_assert_problem(resp, 422)) == ["/dose"]
    assert count_rows("care_sessions", tenant.org_id) == 0


@pytest.mark.parametrize(
    ("over", "pointer"),
    [
        ({"dose": {"route": "rectal", "amount_mg": 50}}, "/dose/route"),
        ({"dose": {"route": None, "amount_mg": 50}}, "/dose/route"),
        ({"dose": {"route": "im", "amount_mg": 0}}, "/dose/amount_mg"),
        ({"dose": {"route": "im", "amount_mg": -5}}, "/dose/amount_mg"),
        ({"dose": {"route": "im", "amount_mg": 1001}}, "/dose/amount_mg"),
        ({"dose": {"route": "im", "amount_mg": "50mg"}}, "/dose/amount_mg"),
        ({"dose": {"route": "im"}}, "/dose/amount_mg"),
        ({"dose": {"route": "im", "amount_mg": 50, "unit": "g"}}, "/dose/unit"),
        ({"occurred_at": _ago(-1)}, "/occurred_at"),
        ({"occurred_at": "2026-03-02T15:00:00"}, "/occurred_at"),
        ({"occurred_at": "2026-03-02"}, "/occurred_at"),
        ({"occurred_at": None}, "/occurred_at"),
        ({"kind": "party"}, "/kind"),
        ({"course_id": "x" * 37}, "/course_id"),
        ({"patient_name": "Jane"}, "/patient_name"),
        ({"occurred_at": "0001-01-01T00:30:00+01:00"}, "/occurred_at"),
        ({"course_id": "a\u0000b"}, "/course_id"),
    ],
    ids=[
        "bad-route",
        "null-route",
        "zero-amount",
        "negative-amount",
        "huge-amount",
        "string-amount",
        "missing-amount",
        "unknown-dose-field",
        "future",
        "naive",
        "date-only",
        "null-occurred",
        "bad-kind",
        "long-course-id",
        "unknown-field",
        "year-1-with-offset",
        "nul-course-id",
    ],
)
def test_bad_session_is_422(tenant, count_rows, over, pointer):
    pid = tenant.patient()
    resp = tenant.post(f"/v1/patients/{pid}/sessions", _dosing(**over))
    body = _assert_problem(resp, 422)
    assert pointer in _pointers(body), body
    assert count_rows("care_sessions", tenant.org_id) == 0
    assert count_rows("courses", tenant.org_id) == 0


def test_nan_amount_is_422(tenant, count_rows):
    pid = tenant.patient()
    resp = tenant.client.post(
        f"/v1/patients/{pid}/sessions",
        content=(
            b'{"kind": "dosing", "occurred_at": "2026-01-01T00:00:00Z",'
            b' "dose": {"route": "im", "amount_mg": NaN}}'
        ),
        headers=tenant.headers() | {"content-type": "application/json"},
    )
    _assert_problem(resp, 422)
    assert count_rows("care_sessions", tenant.org_id) == 0


@pytest.mark.parametrize(
    "amount",
    [b"true", b'"50"', b"1e-320", b"0.5", b"1e309", b"-0.0", b"[50]", b'{"value": 50}', b"null"],
    ids=[
        "bool",
        "numeric-string",
        "subnormal",
        "half-mg",
        "overflow",
        "minus-zero",
        "list",
        "object",
        "null",
    ],
)
def test_a_dose_is_a_plausible_number_of_mg(tenant, count_rows, amount):
    """Issue #9: not `true`, not `"50"`, not 1e-320: a JSON number from 1 to 1000 mg."""
    pid = tenant.patient()
    resp = tenant.client.post(
        f"/v1/patients/{pid}/sessions",
        content=(
            b'{"kind": "dosing", "occurred_at": "2026-01-01T00:00:00Z",'
            b' "dose": {"route": "im", "amount_mg": ' + amount + b"}}"
        ),
        headers=tenant.headers() | {"content-type": "application/json"},
    )
    assert _pointers(_assert_problem(resp, 422)) == ["/dose/amount_mg"]
    assert count_rows("care_sessions", tenant.org_id) == 0


@pytest.mark.parametrize(("route", "amount"), [("im", 1), ("intranasal", 84), ("oral", 1000)])
def test_doses_at_the_bounds_are_recorded(tenant, route, amount):
    pid = tenant.patient()
    resp = tenant.post(
        f"/v1/patients/{pid}/sessions", _dosing(dose={"route": route, "amount_mg": amount})
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["dose"] == {"route": route, "amount_mg": float(amount)}


def test_a_dose_recorded_before_the_bounds_still_reads(tenant, db):
    """A row stored when 0 < dose was the only rule is listed as it is, not a 500."""
    pid = tenant.patient()
    created = tenant.post(f"/v1/patients/{pid}/sessions", _dosing())
    assert created.status_code == 201, created.text
    db.run_write(
        lambda c: c.execute(
            text("UPDATE care_sessions SET dose_amount_mg = 0.25 WHERE id = :i"),
            {"i": created.json()["id"]},
        )
    )
    listed = tenant.get(f"/v1/patients/{pid}/sessions")
    assert listed.status_code == 200, listed.text
    assert [s["dose"] for s in listed.json()["data"]] == [{"route": "im", "amount_mg": 0.25}]


def test_session_with_unknown_course_is_422(tenant, count_rows):
    pid = tenant.patient()
    resp = tenant.post(f"/v1/patients/{pid}/sessions", _dosing(course_id=str(uuid.uuid4())))
    _assert_problem(resp, 422)
    assert count_rows("care_sessions", tenant.org_id) == 0
    assert count_rows("courses", tenant.org_id) == 0


def test_session_with_another_patients_course_is_422(tenant, count_rows):
    pid, other = tenant.patient(), tenant.patient()
    course = tenant.post(f"/v1/patients/{other}/courses", {}).json()
    resp = tenant.post(f"/v1/patients/{pid}/sessions", _dosing(course_id=course["id"]))
    _assert_problem(resp, 422)
    assert count_rows("care_sessions", tenant.org_id) == 0


def test_session_for_unknown_patient_is_404(tenant, count_rows):
    resp = tenant.post(f"/v1/patients/{uuid.uuid4()}/sessions", _dosing())
    _assert_problem(resp, 404)
    assert count_rows("care_sessions", tenant.org_id) == 0
    assert count_rows("courses", tenant.org_id) == 0


def test_list_sessions_pages_in_time_order(tenant):
    pid = tenant.patient()
    created = []
    # posted out of order; listed by occurred_at
    for days in (3, 5, 1, 4, 2):
        resp = tenant.post(
            f"/v1/patients/{pid}/sessions", {"kind": "follow_up", "occurred_at": _ago(days)}
        )
        assert resp.status_code == 201, resp.text
        created.append((days, resp.json()["id"]))
    expected = [sid for _, sid in sorted(created, reverse=True)]  # oldest first

    seen: list[str] = []
    sizes: list[int] = []
    cursor = None
    for _ in range(10):
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        resp = tenant.get(f"/v1/patients/{pid}/sessions", params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        sizes.append(len(body["data"]))
        seen += [s["id"] for s in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sizes == [2, 2, 1]
    assert seen == expected


def test_list_sessions_empty_and_bad_paging(tenant):
    pid = tenant.patient()
    assert tenant.get(f"/v1/patients/{pid}/sessions").json() == {"data": [], "next_cursor": None}
    for params, name in (({"limit": 0}, "limit"), ({"cursor": "garbage"}, "cursor")):
        body = _assert_problem(tenant.get(f"/v1/patients/{pid}/sessions", params=params), 422)
        assert [e.get("parameter") for e in body["errors"]] == [name]


def test_patient_token_may_not_record_sessions(tenant, count_rows):
    pid = tenant.patient()
    resp = tenant.client.post(
        f"/v1/patients/{pid}/sessions", json=_dosing(), headers=tenant.patient_token(pid)
    )
    _assert_problem(resp, 403)
    resp = tenant.client.get(f"/v1/patients/{pid}/courses", headers=tenant.patient_token(pid))
    _assert_problem(resp, 403)
    assert count_rows("care_sessions", tenant.org_id) == 0


def test_integration_role_records_sessions(tenant):
    pid = tenant.patient()
    resp = tenant.post(f"/v1/patients/{pid}/sessions", _dosing(), Role.integration)
    assert resp.status_code == 201, resp.text
