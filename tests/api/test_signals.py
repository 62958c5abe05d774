"""Trends and signals over HTTP: whole courses built as a clinic records them.

Dates are relative to the real clock (an assessment may not lie in the future): the course
starts 60 days ago, and each step reads the signals as the clinic would have seen them then.
"""

from __future__ import annotations

import uuid

import pytest

from kap_outcomes.auth.models import Role

from .course import START, Clinic, _day


def test_a_course_unfolds_as_the_clinic_records_it(tenant):
    clinic = Clinic(tenant)
    first = clinic.signals()
    assert first["booster"]["status"] == "not_applicable"
    assert [r["code"] for r in first["booster"]["reasons"]] == ["no_dosing"]
    assert first["safety"] == {"level": "none", "open_alerts": 0, "unacknowledged_alerts": 0}
    assert first["measurement"] == {"phq9_due": False, "days_since_last_phq9": None}
    assert first["policy_version"] == "default" and first["course_id"] is None

    clinic.phq9(0, 22)  # baseline, before the first dose
    assert clinic.status() == ("not_applicable", ["no_dosing"])

    for number, day in enumerate((1, 3, 5, 8, 10), start=1):
        clinic.dose(day)
        booster = clinic.signals()["booster"]
        assert (booster["status"], booster["reasons"][0]["code"]) == (
            "in_induction",
            "in_induction",
        )
        assert f"{number} of 6 induction doses" in booster["reasons"][0]["detail"]

    clinic.dose(12)  # the sixth dose completes induction
    signals = clinic.signals()
    assert (signals["booster"]["status"], signals["booster"]["reasons"][0]["code"]) == (
        "pending",
        "awaiting_measure",
    )
    assert signals["booster"]["baseline"] == 22
    assert signals["booster"]["days_since_last_dose"] == START - 12
    assert signals["course_id"] is not None

    clinic.phq9(13, 6)
    assert clinic.status() == ("stable", ["stable"])
    clinic.phq9(20, 7)
    assert clinic.status() == ("stable", ["stable"])

    clinic.phq9(27, 11)  # 5 above the nadir of 6; the window's trend rises by 5 too
    status, codes = clinic.status()
    assert status == "watch" and codes == ["rise_from_nadir", "worsening_trend"]
    detail = clinic.signals()["booster"]["reasons"][0]["detail"]
    assert "11" in detail and "nadir of 6" in detail

    clinic.phq9(34, 13)  # a hit: >= 10 and above half the baseline (11), unconfirmed
    status, codes = clinic.status()
    assert status == "watch" and codes[0] == "relapse_unconfirmed"

    clinic.phq9(39, 14)  # a second hit 5 days later confirms it
    signals = clinic.signals()
    booster = signals["booster"]
    assert booster["status"] == "consider_booster"
    assert [r["code"] for r in booster["reasons"]] == ["relapse_confirmed"]
    assert "13" in booster["reasons"][0]["detail"] and "14" in booster["reasons"][0]["detail"]
    assert (booster["baseline"], booster["nadir"], booster["latest"]) == (22, 6, 14)
    assert [s["total"] for s in booster["scores_used"]] == [6, 7, 11, 13, 14]
    assert signals["measurement"]["phq9_due"] is True  # 21 days, early period: weekly
    assert signals["measurement"]["days_since_last_phq9"] == START - 39

    clinic.dose(40, kind="booster")  # a booster starts a new window
    assert clinic.status() == ("pending", ["awaiting_measure"])
    assert clinic.signals()["booster"]["days_since_last_dose"] == START - 40

    clinic.phq9(42, 5)
    signals = clinic.signals()
    assert (signals["booster"]["status"], signals["booster"]["nadir"]) == ("stable", 5)
    assert [s["total"] for s in signals["booster"]["scores_used"]] == [5]

    clinic.phq9(57, 6)
    signals = clinic.signals()
    assert signals["booster"]["status"] == "stable"
    assert signals["measurement"] == {"phq9_due": False, "days_since_last_phq9": 3}
    assert signals["safety"]["level"] == "none"


def test_baseline_below_threshold_and_no_response_are_not_applicable(make_tenant):
    tenant = make_tenant()
    low = Clinic(tenant)
    low.phq9(0, 8)
    for day in range(1, 7):
        low.dose(day)
    assert low.status() == ("not_applicable", ["baseline_below_threshold"])

    flat = Clinic(tenant)
    flat.phq9(0, 20)
    for day in range(1, 7):
        flat.dose(day)
    flat.phq9(8, 15)  # never at or below 10: no response
    booster = flat.signals()["booster"]
    assert booster["status"] == "not_applicable"
    assert [r["code"] for r in booster["reasons"]] == ["no_response"]


def test_no_baseline_when_the_last_score_is_too_old(tenant):
    clinic = Clinic(tenant)
    clinic.phq9(0, 20)
    for day in range(31, 37):  # the first dose 31 days after the only score
        clinic.dose(day)
    assert clinic.status() == ("not_applicable", ["no_baseline"])


def test_the_policy_in_force_is_used_and_named(tenant):
    headers = tenant.headers(Role.admin) | {"If-Match": '"default"'}
    resp = tenant.client.put("/v1/policy", json={"induction_doses": 2}, headers=headers)
    assert resp.status_code == 200, resp.text
    clinic = Clinic(tenant)
    clinic.phq9(0, 20)
    clinic.dose(1)
    clinic.dose(2)  # the course took the policy's 2 induction doses
    signals = clinic.signals()
    assert signals["booster"]["status"] == "pending"
    assert signals["policy_version"] == "v1"
    assert clinic.trend()["policy_version"] == "v1"


def test_safety_block_shows_unresolved_alerts(tenant):
    clinic = Clinic(tenant)
    clinic.phq9(50, 12, item9=1)  # review
    cssrs = {"instrument": "cssrs", "items": [1, 1, 0, 1, 0, 0, None], "administered_at": _day(55)}
    resp = tenant.post(f"/v1/patients/{clinic.pid}/assessments", cssrs)
    assert resp.status_code == 201 and resp.json()["risk"] == "high"
    safety = clinic.signals()["safety"]
    assert safety == {"level": "emergency", "open_alerts": 2, "unacknowledged_alerts": 2}

    emergency = next(a for a in resp.json()["alerts"] if a["level"] == "emergency")
    assert tenant.post(f"/v1/alerts/{emergency['id']}/acknowledge", {}).status_code == 200
    safety = clinic.signals()["safety"]
    assert safety == {"level": "emergency", "open_alerts": 2, "unacknowledged_alerts": 1}

    assert tenant.post(f"/v1/alerts/{emergency['id']}/resolve", {}).status_code == 200
    safety = clinic.signals()["safety"]
    assert safety == {"level": "review", "open_alerts": 1, "unacknowledged_alerts": 1}


def test_trend_of_the_worked_example(tenant):
    clinic = Clinic(tenant)
    ids = [
        clinic.phq9(day, total, item9=1 if total == 25 else 0)["id"]
        for day, total in zip((0, 7, 14, 21, 28), (16, 14, 12, 25, 8), strict=True)
    ]
    body = clinic.trend()
    assert body["instrument"] == "phq9" and body["policy_version"] == "default"
    assert body["trend"] == {"label": "improving", "slope_per_week": -2.0, "projected_change": -8.0}
    assert body["baseline"]["assessment_id"] == ids[0] and body["baseline"]["total"] == 16
    assert body["latest"]["assessment_id"] == ids[-1] and body["latest"]["total"] == 8
    assert body["change"] == {
        "points": -8,
        "percent": -50.0,
        "mcid_met": True,
        "reliable_improvement": True,
        "reliable_deterioration": False,
        "response": True,
        "remission": False,
        "minimal": False,
        "non_caseness": True,
    }
    assert [p["assessment_id"] for p in body["points"]] == ids
    assert [p["smoothed"] for p in body["points"]] == [16.0, 15.0, 13.5, 19.25, 13.625]
    assert [p["severity"] for p in body["points"]] == [
        "moderately_severe",
        "moderate",
        "moderate",
        "severe",
        "mild",
    ]


def test_trend_insufficient_data_and_gad7(tenant):
    clinic = Clinic(tenant)
    for day, total in zip((0, 5, 10), (6, 9, 12), strict=True):
        clinic.gad7(day, total)
    body = clinic.trend("gad7")
    assert body["trend"] == {
        "label": "insufficient_data",
        "slope_per_week": None,
        "projected_change": None,
    }
    assert body["change"]["response"] is None and body["change"]["remission"] is None
    assert body["change"]["points"] == 6 and body["change"]["reliable_deterioration"] is True


def test_trend_without_scores_has_nulls(tenant):
    clinic = Clinic(tenant)
    clinic.phq9(0, 10)
    body = clinic.trend("gad7")
    assert body["baseline"] is None and body["latest"] is None and body["change"] is None
    assert body["points"] == [] and body["trend"]["label"] == "insufficient_data"


def test_invalid_forms_take_no_part(tenant):
    clinic = Clinic(tenant)
    clinic.phq9(0, 12)
    body = {
        "instrument": "phq9",
        "items": [None, None, None, 3, 3, 3, 3, 3, 0],
        "administered_at": _day(1),
    }
    assert tenant.post(f"/v1/patients/{clinic.pid}/assessments", body).status_code == 201
    assert [p["total"] for p in clinic.trend()["points"]] == [12]


def test_patients_read_their_own_and_nobody_elses(tenant, make_tenant):
    mine = Clinic(tenant)
    mine.phq9(0, 10)
    theirs = Clinic(tenant)
    token = tenant.patient_token(mine.pid)
    for path in ("signals", "trends?instrument=phq9"):
        assert (
            tenant.client.get(f"/v1/patients/{mine.pid}/{path}", headers=token).status_code == 200
        )
        resp = tenant.client.get(f"/v1/patients/{theirs.pid}/{path}", headers=token)
        assert resp.status_code == 404

    stranger = make_tenant()
    for pid in (mine.pid, str(uuid.uuid4())):
        assert stranger.get(f"/v1/patients/{pid}/signals").status_code == 404
        assert stranger.get(f"/v1/patients/{pid}/trends?instrument=phq9").status_code == 404
    assert tenant.client.get(f"/v1/patients/{mine.pid}/signals").status_code == 401


@pytest.mark.parametrize("query", ["", "?instrument=cssrs", "?instrument=PHQ9"])
def test_trend_needs_phq9_or_gad7(tenant, query):
    clinic = Clinic(tenant)
    resp = tenant.get(f"/v1/patients/{clinic.pid}/trends{query}")
    assert resp.status_code == 422 and resp.json()["errors"][0]["parameter"] == "instrument"
