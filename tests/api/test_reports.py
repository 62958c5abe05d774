"""Cohort outcomes and CMS159 over HTTP: real database, real requests, hand-counted values."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from kap_outcomes.auth.models import Role
from tests.api.course import T0, Clinic

PROBLEM = "application/problem+json"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _dose(clinic: Clinic, day: float, route: str, kind: str = "dosing") -> None:
    body = {
        "kind": kind,
        "occurred_at": _iso(T0 + timedelta(days=day)),
        "dose": {"route": route, "amount_mg": 35},
    }
    resp = clinic.tenant.post(f"/v1/patients/{clinic.pid}/sessions", body)
    assert resp.status_code == 201, resp.text


def _outcomes(tenant, role=Role.clinician, headers=None, **params):
    base = {"from": (T0 - timedelta(days=1)).date().isoformat(), "to": date.today().isoformat()}
    return tenant.client.get(
        "/v1/reports/outcomes",
        params=base | params,
        headers=tenant.headers(role) | (headers or {}),
    )


def _cohort(tenant) -> None:
    # a: iv induction on days 0-5, B = 20 on day -1, PHQ-9 8 on day 14: week 2 response
    #    (20 - 8 = 12 >= 10), no remission, change -12; one booster on day 30.
    # b: intranasal induction, B = 20, no follow-up: counts in n_started only.
    a = Clinic(tenant)
    a.phq9(-1, 20)
    for day in range(6):
        _dose(a, day, "iv")
    a.phq9(14, 8)
    _dose(a, 30, "iv", kind="booster")
    b = Clinic(tenant)
    b.phq9(-1, 20)
    for day in range(6):
        _dose(b, day, "intranasal")


def test_outcomes_report_counts_by_hand(tenant, make_tenant):
    _cohort(tenant)
    _cohort(make_tenant())  # another organisation's courses never count
    resp = _outcomes(tenant)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["n_started"], body["n_followed_up"], body["groups"]) == (2, 1, [])
    week2 = next(h for h in body["horizons"] if h["weeks"] == 2)
    assert week2["n_scored"] == 1
    # Wilson for 1/1: low = 1 / (1 + z^2) = 1 / 4.841459 = 0.2065.
    assert week2["response"] == {
        "n": 1,
        "events": 1,
        "rate": 1.0,
        "ci_low": pytest.approx(0.2065, abs=1e-4),
        "ci_high": 1.0,
    }
    assert (week2["remission"]["n"], week2["remission"]["events"]) == (1, 0)
    assert week2["change"]["median"] == -12
    assert body["time_to_response"]["median_days"] == 14.0
    # Kaplan-Meier over the followed-up courses only (b has no follow-up): a responds on day
    # 14 of 14 after its first dose, alone at risk, so S drops to 0.
    assert (body["time_to_response"]["n"], body["time_to_response"]["events"]) == (1, 1)
    assert body["time_to_response"]["steps"] == [
        {"day": 14.0, "at_risk": 1, "events": 1, "censored": 0, "survival": 0.0}
    ]
    week4 = next(h for h in body["horizons"] if h["weeks"] == 4)
    assert week4["n_scored"] == 0 and week4["response"]["rate"] is None


def test_outcomes_grouped_by_route_and_by_booster_count(tenant):
    _cohort(tenant)
    by_route = _outcomes(tenant, group_by="route").json()
    groups = {g["group"]: g for g in by_route["groups"]}
    assert set(groups) == {"intranasal", "iv"}
    assert groups["iv"]["n_started"] == 1 and groups["intranasal"]["n_followed_up"] == 0
    by_boosters = _outcomes(tenant, group_by="booster_count").json()
    assert [(g["group"], g["n_started"]) for g in by_boosters["groups"]] == [("0", 1), ("1", 1)]


def test_gad7_outcomes_have_no_remission(tenant):
    _cohort(tenant)
    body = _outcomes(tenant, instrument="gad7").json()
    assert body["n_started"] == 2
    assert all(h["remission"] is None for h in body["horizons"])


def test_outcomes_as_csv(tenant):
    _cohort(tenant)
    resp = _outcomes(tenant, headers={"Accept": "text/csv"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    started = next(r for r in rows if r["measure"] == "started")
    assert started["n"] == "2" and started["group"] == "all"
    date.fromisoformat(started["period_from"])  # ISO 8601 dates
    response = next(r for r in rows if r["measure"] == "response" and r["weeks"] == "2")
    assert (response["n"], response["events"], float(response["rate"])) == ("1", "1", 1.0)
    # JSON stays the default, and wins a tie.
    tie = _outcomes(tenant, headers={"Accept": "text/csv, application/json"})
    assert tie.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-05-01", "to": "2026-04-01"},
        {"from": "2026-02-30", "to": "2026-04-01"},
        {"instrument": "cssrs"},
        {"group_by": "clinician"},
        {"from": "1900-01-01", "to": "2026-01-01"},
        {"period": "2026"},
    ],
)
def test_bad_report_queries_are_422(tenant, params):
    resp = _outcomes(tenant, **params)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)


def test_a_missing_period_is_422(tenant):
    resp = tenant.get("/v1/reports/outcomes", params={"from": "2026-01-01"})
    assert resp.status_code == 422
    resp = tenant.get("/v1/reports/cms159", params={"period_start": "2026-01-01"})
    assert resp.status_code == 422


def test_patients_may_not_read_reports(tenant):
    pid = tenant.patient()
    headers = tenant.patient_token(pid)
    for path in ("/v1/reports/outcomes", "/v1/reports/cms159"):
        resp = tenant.client.get(
            path,
            params={"from": "2026-01-01", "to": "2026-02-01"}
            if "outcomes" in path
            else {"period_start": "2026-01-01", "period_end": "2026-12-31"},
            headers=headers,
        )
        assert resp.status_code == 403


def test_one_audit_event_per_report_without_a_patient(tenant):
    _cohort(tenant)
    rid = f"req-{uuid.uuid4().hex[:12]}"
    resp = _outcomes(tenant, headers={"X-Request-ID": rid})
    assert resp.status_code == 200
    events = tenant.client.get(
        "/v1/audit-events", params={"limit": 500}, headers=tenant.headers(Role.admin)
    ).json()["data"]
    mine = [e for e in events if e["request_id"] == rid]
    assert len(mine) == 1
    assert mine[0]["action"] == "GET /v1/reports/outcomes"
    assert mine[0]["patient_id"] is None and mine[0]["status"] == 200


# --- CMS159 ---------------------------------------------------------------------------------


def _patient(tenant, **fields) -> Clinic:
    resp = tenant.post("/v1/patients", {"external_id": f"ext-{uuid.uuid4()}", **fields})
    assert resp.status_code == 201, resp.text
    return Clinic(tenant, resp.json()["id"])


def _phq9_at(clinic: Clinic, moment: datetime, total: int) -> None:
    clinic.phq9((moment - T0) / timedelta(days=1), total)


def test_cms159_over_http(tenant):
    now = datetime.now(UTC).replace(microsecond=0)
    index_at = now - timedelta(days=400)
    follow_at = now - timedelta(days=35)  # 365 days after the index: inside 12 months +- 60
    # The measurement period starts 3 months after the index day's month: the index event
    # then lies inside [period_start - 14 months, period_start - 2 months).
    month = index_at.year * 12 + index_at.month - 1 + 3
    period_start = date(month // 12, month % 12 + 1, 1)
    period_end = now.date()

    remits = _patient(tenant, age_group="18+", conditions=["depression"])
    _phq9_at(remits, index_at, 16)
    _phq9_at(remits, follow_at, 3)
    teen = _patient(tenant, age_group="12-17", conditions=["dysthymia"])
    _phq9_at(teen, index_at, 14)
    _phq9_at(teen, follow_at, 9)
    excluded = _patient(tenant, age_group="18+", conditions=["depression", "bipolar_disorder"])
    _phq9_at(excluded, index_at, 20)
    unknown = _patient(tenant, age_group="18+")  # conditions not recorded
    _phq9_at(unknown, index_at, 20)
    no_age = _patient(tenant, conditions=["depression"])
    _phq9_at(no_age, index_at, 20)

    resp = tenant.get(
        "/v1/reports/cms159",
        params={"period_start": period_start.isoformat(), "period_end": period_end.isoformat()},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    strata = {s["age_group"]: s for s in body["strata"]}
    assert (strata["18+"]["denominator"], strata["18+"]["exclusions"]) == (2, 1)
    assert (strata["18+"]["numerator"], strata["18+"]["rate"]) == (1, 1.0)
    assert (strata["12-17"]["denominator"], strata["12-17"]["numerator"]) == (1, 0)
    assert strata["12-17"]["rate"] == 0.0
    assert body["total"]["denominator"] == 3 and body["total"]["rate"] == 0.5
    assert body["not_evaluable"] == 2
    assert body["not_evaluable_by_reason"] == {
        "conditions_not_recorded": 1,
        "age_group_not_recorded": 1,
    }


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/reports/cms159", {"period_start": "0001-01-01", "period_end": "0001-12-31"}),
        ("/v1/reports/cms159", {"period_start": "9999-01-01", "period_end": "9999-12-31"}),
        ("/v1/reports/outcomes", {"from": "9999-12-01", "to": "9999-12-31"}),
        ("/v1/reports/outcomes", {"from": "0001-01-01", "to": "0001-01-02"}),
    ],
)
def test_dates_at_the_ends_of_the_calendar_are_422_not_500(tenant, path, params):
    # Found by the schemathesis run: year 1 minus 14 months, or 9999-12-31 plus a day.
    resp = tenant.get(path, params=params)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)


def test_cms159_period_must_not_end_before_it_starts(tenant):
    resp = tenant.get(
        "/v1/reports/cms159", params={"period_start": "2026-02-01", "period_end": "2026-01-01"}
    )
    assert resp.status_code == 422 and resp.headers["content-type"].startswith(PROBLEM)


# --- patients' age group and conditions -----------------------------------------------------


def test_age_group_and_conditions_are_stored_and_shown(tenant):
    clinic = _patient(tenant, age_group="12-17", conditions=["deceased", "depression"])
    body = tenant.get(f"/v1/patients/{clinic.pid}").json()
    assert body["age_group"] == "12-17"
    assert body["conditions"] == ["deceased", "depression"]
    plain = tenant.get(f"/v1/patients/{tenant.patient()}").json()
    assert plain["age_group"] is None and plain["conditions"] is None
    empty = _patient(tenant, conditions=[])
    assert tenant.get(f"/v1/patients/{empty.pid}").json()["conditions"] == []


@pytest.mark.parametrize(
    "fields",
    [
        {"age_group": "30"},
        {"age_group": "0-11"},
        {"conditions": ["F32.1"]},
        {"conditions": ["depression", "depression"]},
        {"conditions": "depression"},
        {"birth_date": "2010-01-01"},
    ],
)
def test_unknown_age_groups_and_conditions_are_refused(tenant, count_rows, fields):
    resp = tenant.post("/v1/patients", {"external_id": f"ext-{uuid.uuid4()}", **fields})
    assert resp.status_code == 422, resp.text
    assert count_rows("patients", tenant.org_id) == 0


def test_age_group_and_conditions_change_with_if_match(tenant):
    clinic = _patient(tenant)
    path = f"/v1/patients/{clinic.pid}"
    read = tenant.get(path)
    etag = read.headers["ETag"]
    change = {"age_group": "18+", "conditions": ["depression"]}
    missing = tenant.client.patch(path, json=change, headers=tenant.headers())
    assert missing.status_code == 428
    done = tenant.client.patch(path, json=change, headers=tenant.headers() | {"If-Match": etag})
    assert done.status_code == 200, done.text
    assert (done.json()["age_group"], done.json()["conditions"]) == ("18+", ["depression"])
    assert done.headers["ETag"] != etag
    stale = tenant.client.patch(
        path, json={"age_group": "12-17"}, headers=tenant.headers() | {"If-Match": etag}
    )
    assert stale.status_code == 412
    # A field left out keeps its value; null clears it.
    cleared = tenant.client.patch(
        path,
        json={"conditions": None},
        headers=tenant.headers() | {"If-Match": done.headers["ETag"]},
    )
    assert cleared.status_code == 200
    assert tenant.get(path).json() == cleared.json()
    assert (cleared.json()["age_group"], cleared.json()["conditions"]) == ("18+", None)
    for bad in ({}, {"conditions": ["F32.1"]}, {"external_id": "x"}):
        resp = tenant.client.patch(path, json=bad, headers=tenant.headers() | {"If-Match": "*"})
        assert resp.status_code == 422, bad
    other = tenant.client.patch(
        f"/v1/patients/{uuid.uuid4()}", json=change, headers=tenant.headers() | {"If-Match": "*"}
    )
    assert other.status_code == 404


def _set_zone(tenant, zone: str) -> None:
    current = tenant.get("/v1/organisation", Role.admin).headers["ETag"]
    resp = tenant.client.put(
        "/v1/organisation",
        json={"timezone": zone},
        headers=tenant.headers(Role.admin) | {"If-Match": current},
    )
    assert resp.status_code == 200, resp.text


def test_a_report_period_is_the_clinics_days(tenant):
    # A first dose at 23:30 on 31 March in California is 06:30 on 1 April in UTC: a March
    # report of a clinic in America/Los_Angeles counts it; the same clinic in UTC does not.
    clinic = Clinic(tenant)
    body = {
        "kind": "dosing",
        "occurred_at": "2026-03-31T23:30:00-07:00",
        "dose": {"route": "iv", "amount_mg": 35},
    }
    assert tenant.post(f"/v1/patients/{clinic.pid}/sessions", body).status_code == 201
    march = {"from": "2026-03-01", "to": "2026-03-31"}
    _set_zone(tenant, "America/Los_Angeles")
    assert _outcomes(tenant, **march).json()["n_started"] == 1
    _set_zone(tenant, "UTC")
    assert _outcomes(tenant, **march).json()["n_started"] == 0
    assert _outcomes(tenant, **{"from": "2026-04-01", "to": "2026-04-30"}).json()["n_started"] == 1
