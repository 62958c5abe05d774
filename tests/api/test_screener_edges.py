"""The C-SSRS screener's edge cases through HTTP (clinical-rules.md section 8).

Expected results come from the rules, by hand: q6b ("within the past 3 months") = yes means a
suicidal act in the past 3 months, the screener's `high` row [Columbia], whatever q6 says; high
opens an `emergency` alert (section 2). A form with no answer at all is not valid and opens a
`review` alert of kind `safety_item_missing`.
"""

from __future__ import annotations

import pytest

N = None


def _screen(tenant, pid, items):
    resp = tenant.post(
        f"/v1/patients/{pid}/assessments",
        {"instrument": "cssrs", "items": items, "administered_at": "2026-03-02T15:04:05Z"},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


@pytest.mark.parametrize(
    ("items", "risk", "level"),
    [
        ([0, 0, N, N, N, 0, 1], "high", "emergency"),  # q6 no, q6b yes
        ([0, 0, N, 1, N, 0, N], "high", "emergency"),  # q2 no, q4 (not asked) yes
        ([0, 0, 1, N, N, 0, N], "moderate", "urgent"),  # q2 no, q3 (not asked) yes
    ],
)
def test_contradictions_are_flagged_and_scored_conservatively(tenant, items, risk, level):
    pid = tenant.patient()
    result = _screen(tenant, pid, items)
    assert "cssrs_skip_logic_violation" in result["flags"]
    assert (result["valid"], result["risk"]) == (True, risk)
    assert [(a["level"], a["kind"]) for a in result["alerts"]] == [(level, "cssrs_risk")]
    stored = tenant.get(f"/v1/assessments/{result['id']}").json()
    assert stored["items"] == items  # stored as sent


def test_a_screener_with_no_answer_opens_a_review_alert(tenant):
    pid = tenant.patient()
    result = _screen(tenant, pid, [N] * 7)
    assert (result["valid"], result["risk"]) == (False, None)
    assert [(a["level"], a["kind"]) for a in result["alerts"]] == [
        ("review", "safety_item_missing")
    ]
    alerts = tenant.get("/v1/alerts", params={"patient_id": pid}).json()["data"]
    assert [(a["level"], a["kind"], a["assessment_id"]) for a in alerts] == [
        ("review", "safety_item_missing", result["id"])
    ]
    assert tenant.get(f"/v1/patients/{pid}/signals").json()["safety"]["level"] == "review"


def test_a_screener_answered_no_throughout_opens_nothing(tenant):
    pid = tenant.patient()
    result = _screen(tenant, pid, [0, 0, N, N, N, 0, N])
    assert (result["valid"], result["risk"], result["flags"], result["alerts"]) == (
        True,
        "none",
        [],
        [],
    )
