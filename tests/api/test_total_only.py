"""Total-only scores on /v1 (clinical-rules.md section 6): an EHR flowsheet knows the total,
not the answers.

Expected values are computed by hand from the published bands [Kroenke01, Spitzer06] and the
worked examples of clinical-rules.md sections 4 and 5, never from the code's constants.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .course import START, Clinic, _day


def _iso(days_ago: float) -> str:
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=days_ago)
    return at.isoformat().replace("+00:00", "Z")


def submit(
    tenant: Any, pid: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Any:
    return tenant.client.post(
        f"/v1/patients/{pid}/assessments", json=body, headers=headers or tenant.headers()
    )


class TotalsClinic(Clinic):
    """The course of tests/api/course.py, its PHQ-9s sent as totals without items."""

    def phq9(self, day: float, total: int, *, item9: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "instrument": "phq9",
            "total": total,
            "items": None,
            "administered_at": _day(day),
            "source": "ehr",
        }
        if item9 is not None:
            body["item9"] = item9
        resp = submit(self.tenant, self.pid, body)
        assert resp.status_code == 201, resp.text
        return dict(resp.json())


def test_a_phq9_total_without_item9_is_scored_and_opens_a_review(tenant: Any) -> None:
    pid = tenant.patient()
    resp = submit(
        tenant,
        pid,
        {"instrument": "phq9", "total": 12, "items": None, "administered_at": _iso(1)},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    # 12 lies in the 10-14 band: moderate [Kroenke01]
    assert (body["total"], body["severity"], body["valid"]) == (12, "moderate", True)
    assert (body["items"], body["prorated"], body["raw_total"]) == (None, False, 12.0)
    assert body["subscores"] == {}  # no PHQ-2 without items 1 and 2
    assert body["flags"] == ["item9_unknown"]
    assert [(a["level"], a["kind"], a["status"]) for a in body["alerts"]] == [
        ("review", "safety_item_missing", "open")
    ]
    # read back, and the alert is in the clinic's list
    assert tenant.get(f"/v1/assessments/{body['id']}").json()["flags"] == ["item9_unknown"]
    alerts = tenant.get("/v1/alerts", params={"status": "open"}).json()["data"]
    mine = [a for a in alerts if a["assessment_id"] == body["id"]]
    assert [(a["level"], a["kind"]) for a in mine] == [("review", "safety_item_missing")]


@pytest.mark.parametrize(
    ("item9", "levels", "flags"),
    [
        (0, [], ["item9_negative"]),  # never "no risk": item9_negative
        (1, [("review", "phq9_item9")], []),
        (2, [("urgent", "phq9_item9")], []),
        (3, [("urgent", "phq9_item9")], []),
    ],
)
def test_item9_sent_with_the_total_is_judged(
    tenant: Any, item9: int, levels: list[tuple[str, str]], flags: list[str]
) -> None:
    pid = tenant.patient()
    body = {"instrument": "phq9", "total": 20, "item9": item9, "administered_at": _iso(1)}
    resp = submit(tenant, pid, body)
    assert resp.status_code == 201, resp.text
    found = resp.json()
    assert (found["severity"], found["item9"]) == ("severe", item9)  # 20-27 severe
    assert found["flags"] == flags
    assert [(a["level"], a["kind"]) for a in found["alerts"]] == levels


@pytest.mark.parametrize(
    ("total", "severity"),
    [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "severe"),
        (21, "severe"),
    ],
)
def test_gad7_totals_take_the_published_bands_and_open_nothing(
    tenant: Any, total: int, severity: str
) -> None:
    pid = tenant.patient()
    resp = submit(tenant, pid, {"instrument": "gad7", "total": total, "administered_at": _iso(1)})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert (body["severity"], body["flags"], body["alerts"]) == (severity, [], [])


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"instrument": "phq9", "total": 28}, "/total"),
        ({"instrument": "phq9", "total": -1}, "/total"),
        ({"instrument": "gad7", "total": 22}, "/total"),
        ({"instrument": "phq9", "total": 12.5}, "/total"),
        ({"instrument": "phq9", "total": 12.0}, "/total"),
        ({"instrument": "phq9", "total": "12"}, "/total"),
        ({"instrument": "phq9", "total": True}, "/total"),
        ({"instrument": "cssrs", "total": 3}, "/total"),
        ({"instrument": "phq9", "total": 12, "items": [1] * 9}, "/total"),
        ({"instrument": "phq9"}, "/items"),
        ({"instrument": "phq9", "items": None, "total": None}, "/items"),
        ({"instrument": "gad7", "total": 12, "item9": 1}, "/item9"),
        ({"instrument": "phq9", "total": 12, "item9": 4}, "/item9"),
        ({"instrument": "phq9", "items": [0] * 9, "item9": 1}, "/item9"),
        ({"instrument": "gad7", "total": 12, "difficulty": 1}, "/difficulty"),
    ],
)
def test_bad_totals_are_422_and_store_nothing(
    tenant: Any, count_rows: Any, body: dict[str, Any], pointer: str
) -> None:
    pid = tenant.patient()
    resp = submit(tenant, pid, {**body, "administered_at": _iso(1)})
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    pointers = [e.get("pointer") for e in resp.json().get("errors", [])]
    assert pointer in pointers, pointers
    assert count_rows("assessments", tenant.org_id) == 0
    assert count_rows("alerts", tenant.org_id) == 0


def test_the_booster_worked_example_from_totals_alone(tenant: Any) -> None:
    """clinical-rules.md section 5: B = 22; induction complete on day -1 (here day 12);
    then 6 → stable, 7 → stable, 11 → watch (rise of 5 from the nadir 6), 13 → watch
    (an unconfirmed hit), 14 five days after the 13 → consider_booster."""
    clinic = TotalsClinic(tenant)
    clinic.phq9(0, 22)
    for day in (1, 3, 5, 8, 10, 12):
        clinic.dose(day)
    assert clinic.status() == ("pending", ["awaiting_measure"])
    clinic.phq9(13, 6)
    assert clinic.status() == ("stable", ["stable"])
    clinic.phq9(20, 7)
    assert clinic.status() == ("stable", ["stable"])
    clinic.phq9(27, 11)
    status, codes = clinic.status()
    assert status == "watch" and "rise_from_nadir" in codes
    clinic.phq9(34, 13)
    status, codes = clinic.status()
    assert status == "watch" and codes[0] == "relapse_unconfirmed"
    clinic.phq9(39, 14)
    booster = clinic.signals()["booster"]
    assert booster["status"] == "consider_booster"
    assert [r["code"] for r in booster["reasons"]] == ["relapse_confirmed"]
    assert (booster["baseline"], booster["nadir"], booster["latest"]) == (22, 6, 14)
    assert [s["total"] for s in booster["scores_used"]] == [6, 7, 11, 13, 14]
    # every one of those totals came without item 9: six safety reviews, shown beside it
    safety = clinic.signals()["safety"]
    assert (safety["level"], safety["open_alerts"]) == ("review", 6)
    # the caseload ranks it among the open alerts, and the outcomes report counts the course
    rows = tenant.get("/v1/caseload").json()["data"]
    mine = [r for r in rows if r["patient_id"] == clinic.pid]
    assert mine and mine[0]["booster_status"] == "consider_booster"
    first_dose = (datetime.now(UTC) - timedelta(days=START - 1)).date()
    report = tenant.get(
        "/v1/reports/outcomes",
        params={"from": str(first_dose - timedelta(days=1)), "to": str(first_dose)},
    )
    assert report.status_code == 200, report.text
    assert report.json()["n_started"] == 1


def test_the_trend_worked_example_from_totals(tenant: Any) -> None:
    """clinical-rules.md section 4: days 0, 7, 14, 21, 28 → 16, 14, 12, 25, 8 is -2.0 points a
    week (Theil-Sen), improving; change from 16 to 8 is -8 points, -50 %: response."""
    clinic = TotalsClinic(tenant)
    for day, total in zip((0, 7, 14, 21, 28), (16, 14, 12, 25, 8), strict=True):
        clinic.phq9(day, total, item9=0)
    body = clinic.trend()
    assert body["trend"] == {"label": "improving", "slope_per_week": -2.0, "projected_change": -8.0}
    assert body["change"]["points"] == -8 and body["change"]["percent"] == -50.0
    assert body["change"]["response"] is True and body["change"]["remission"] is False
    assert [p["severity"] for p in body["points"]] == [
        "moderately_severe",
        "moderate",
        "moderate",
        "severe",
        "mild",
    ]


def test_a_total_only_score_is_amended_with_a_total(tenant: Any) -> None:
    pid = tenant.patient()
    created = submit(tenant, pid, {"instrument": "phq9", "total": 12, "administered_at": _iso(2)})
    aid = created.json()["id"]
    resp = tenant.client.post(
        f"/v1/assessments/{aid}/amend",
        json={"total": 9, "item9": 0, "reason": "typed 12 for 9"},
        headers={**tenant.headers(), "If-Match": created.headers["ETag"]},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["total"], body["severity"], body["flags"], body["items"]) == (
        9,
        "mild",
        ["item9_negative"],
        None,
    )
    history = tenant.get(f"/v1/assessments/{aid}/history").json()["versions"]
    assert [(v["total"], v["items"], v["item9"]) for v in history] == [
        (12, None, None),
        (9, None, 0),
    ]


def test_a_retried_total_is_stored_once_with_one_alert(tenant: Any, count_rows: Any) -> None:
    pid = tenant.patient()
    body = {"instrument": "phq9", "total": 17, "administered_at": _iso(1)}
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = submit(tenant, pid, body, headers={**tenant.headers(), **key})
    again = submit(tenant, pid, body, headers={**tenant.headers(), **key})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert count_rows("assessments", tenant.org_id) == 1
    assert count_rows("alerts", tenant.org_id) == 1
