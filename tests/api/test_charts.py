"""``GET /v1/patients/{id}/charts/{instrument}.svg``: the chart EHRs show, checked against the
trend the API serves and against hand computation, never against the chart code.

The course is clinical-rules.md section 4's worked example: PHQ-9 16, 14, 12, 25, 8 on days
0, 7, 14, 21, 28 gives a Theil–Sen slope of −2.0 points a week. By hand, the line's intercept
is the median of score − slope × day: 16, 14 + 2, 12 + 4, 25 + 6, 8 + 8 = 16, 16, 16, 31, 16,
so the line runs from 16 on day 0 to 16 − 8 = 8 on day 28.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from kap_outcomes.auth.models import Role

from .course import Clinic

SVG = "{http://www.w3.org/2000/svg}"
EXAMPLE = [(0, 16), (7, 14), (14, 12), (21, 25), (28, 8)]


def _chart(tenant, pid: str, instrument: str = "phq9", **params):
    resp = tenant.get(f"/v1/patients/{pid}/charts/{instrument}.svg", params=params)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("image/svg+xml")
    return resp.text, ET.fromstring(resp.text)


def _all(root: ET.Element, cls: str) -> list[ET.Element]:
    return [e for e in root.iter() if cls in (e.get("class") or "").split()]


@pytest.fixture
def example(tenant):
    clinic = Clinic(tenant)
    clinic.phq9(0, 16)  # the baseline, before the first dose
    for day in (0, 2, 4, 7, 9, 11):
        clinic.dose(day + 0.1)
    for day, total in EXAMPLE[1:]:
        clinic.phq9(day, total, item9=1 if total > 24 else 0)  # 25 needs item 9
    clinic.dose(30, kind="booster")
    # one form that cannot be scored (three items missing): no point on the chart
    resp = tenant.post(
        f"/v1/patients/{clinic.pid}/assessments",
        {
            "instrument": "phq9",
            "items": [None, None, None, 1, 1, 1, 1, 1, 0],
            "administered_at": "2026-01-02T10:00:00Z",
        },
    )
    assert resp.status_code == 201 and resp.json()["valid"] is False
    return clinic


def test_the_chart_draws_the_apis_trend(tenant, example):
    """The worked example, its first score the baseline: the window holds all five."""
    trend = example.trend()
    _text, root = _chart(tenant, example.pid)
    points = _all(root, "score-point")
    # one point per valid score, in the API's order, with the API's totals and dates
    assert [int(p.get("data-total")) for p in points] == [p["total"] for p in trend["points"]]
    assert [p.get("data-assessment-id") for p in points] == [
        p["assessment_id"] for p in trend["points"]
    ]
    assert [int(p.get("data-total")) for p in points] == [16, 14, 12, 25, 8]
    # the trend line: the API's slope, and hand-computed ends (module docstring)
    (line,) = _all(root, "trend-line")
    assert float(line.get("data-slope-per-week")) == trend["trend"]["slope_per_week"] == -2.0
    assert line.get("data-label") == trend["trend"]["label"] == "improving"
    assert float(line.get("data-start-value")) == pytest.approx(16.0)
    assert float(line.get("data-end-value")) == pytest.approx(8.0)
    # baseline and the MCID threshold below it (PHQ-9 MCID 5 [Lowe04]: 16 − 5 = 11)
    assert trend["baseline"]["total"] == 16
    assert _all(root, "baseline")[0].get("data-value") == "16"
    assert _all(root, "mcid")[0].get("data-value") == "11"
    # one marker per dose session: six dosing, one booster
    markers = _all(root, "dose-marker")
    assert [m.get("data-kind") for m in markers] == ["dosing"] * 6 + ["booster"]
    # severity bands as published [Kroenke01]
    bands = [(int(b.get("data-low")), int(b.get("data-high"))) for b in _all(root, "band")]
    assert bands == [(0, 4), (5, 9), (10, 14), (15, 19), (20, 27)]
    assert "improving" in root.find(f"{SVG}desc").text


def test_the_svg_stands_alone(tenant, example):
    text, root = _chart(tenant, example.pid, width=500, height=240)
    assert root.tag == f"{SVG}svg"
    assert root.get("width") == "500" and root.get("height") == "240"
    assert root.find(f"{SVG}title").text == "PHQ-9 over time"
    lowered = text.lower()
    assert "<script" not in lowered and "javascript:" not in lowered
    assert "href" not in lowered and "@import" not in lowered and "url(" not in lowered
    assert "<foreignobject" not in lowered
    for element in root.iter():  # no event handler anywhere
        assert not any(name.lower().startswith("on") for name in element.attrib)
    # the only URL is the SVG namespace itself
    assert lowered.count("http") == 1 and "http://www.w3.org/2000/svg" in text


def test_gad7_bands_and_empty_chart(tenant):
    clinic = Clinic(tenant)
    _, root = _chart(tenant, clinic.pid, "gad7")
    bands = [(int(b.get("data-low")), int(b.get("data-high"))) for b in _all(root, "band")]
    assert bands == [(0, 4), (5, 9), (10, 14), (15, 21)]  # [Spitzer06]
    assert _all(root, "score-point") == [] and _all(root, "trend-line") == []
    assert "No valid GAD-7 score" in root.find(f"{SVG}desc").text


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("cssrs.svg", 422),
        ("phq9.svg?width=10", 422),
        ("phq9.svg?height=100000", 422),
        ("phq9.png", 404),
        ("phq9.svg?colour=red", 422),
    ],
)
def test_bad_requests_are_refused(tenant, path, status):
    pid = tenant.patient()
    resp = tenant.get(f"/v1/patients/{pid}/charts/{path}")
    assert resp.status_code == status, resp.text


def test_other_organisations_and_patients_do_not_see_it(tenant, make_tenant):
    pid = tenant.patient()
    other = make_tenant()
    assert other.get(f"/v1/patients/{pid}/charts/phq9.svg").status_code == 404
    own = tenant.client.get(
        f"/v1/patients/{pid}/charts/phq9.svg", headers=tenant.patient_token(pid)
    )
    assert own.status_code == 200
    stranger = tenant.client.get(
        f"/v1/patients/{pid}/charts/phq9.svg", headers=tenant.patient_token(tenant.patient())
    )
    assert stranger.status_code == 404
    assert tenant.client.get(f"/v1/patients/{pid}/charts/phq9.svg").status_code == 401


def test_reading_a_chart_is_audited_with_its_patient(tenant):
    pid = tenant.patient()
    tenant.get(f"/v1/patients/{pid}/charts/phq9.svg")
    events = tenant.get("/v1/audit-events", role=Role.admin, params={"patient_id": pid}).json()
    actions = [e["action"] for e in events["data"]]
    assert "GET /v1/patients/{patient_id}/charts/{instrument}.svg" in actions


def test_dates_on_the_axis_are_the_clinics(tenant):
    """A score at 02:30 UTC is on the previous calendar day in Los Angeles."""
    clinic = Clinic(tenant)
    current = tenant.get("/v1/organisation", role=Role.admin)
    resp = tenant.client.put(
        "/v1/organisation",
        json={"timezone": "America/Los_Angeles"},
        headers=tenant.headers(Role.admin) | {"If-Match": current.headers["ETag"]},
    )
    assert resp.status_code == 200, resp.text
    at = datetime(2026, 1, 10, 2, 30, tzinfo=UTC)
    resp = tenant.post(
        f"/v1/patients/{clinic.pid}/assessments",
        {"instrument": "phq9", "items": [1] * 9, "administered_at": at.isoformat()},
    )
    assert resp.status_code == 201
    _, root = _chart(tenant, clinic.pid)
    assert "2026-01-09: 9" in [t.text for t in root.iter(f"{SVG}title")]
