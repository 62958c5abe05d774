"""Episode outcomes in each course's trend output (clinical-rules.md sections 3 and 8), through
HTTP. Every expectation is computed by hand from section 3's definitions: caseness PHQ-9 >= 10
or GAD-7 >= 8; reliable change 6 (PHQ-9) and 4 (GAD-7) points."""

from __future__ import annotations

import pytest

from tests.api.course import Clinic, _day


def _course(tenant, phq9: tuple[int, int] | None, gad7: tuple[int, int] | None) -> Clinic:
    """Baselines on day 0, a first dose on day 1, the latest scores on day 20."""
    clinic = Clinic(tenant)
    if phq9:
        clinic.phq9(0, phq9[0])
    if gad7:
        clinic.gad7(0, gad7[0])
    body = {"kind": "dosing", "occurred_at": _day(1), "dose": {"route": "iv", "amount_mg": 35}}
    assert tenant.post(f"/v1/patients/{clinic.pid}/sessions", body).status_code == 201
    if phq9:
        clinic.phq9(20, phq9[1])
    if gad7:
        clinic.gad7(20, gad7[1])
    return clinic


@pytest.mark.parametrize(
    ("phq9", "gad7", "expected"),
    [
        # a case at the start (22 >= 10), none at the end (6 < 10, 5 < 8); 16 and 9 points
        # of reliable improvement, no deterioration
        ((22, 6), (14, 5), (True, True)),
        # a case (12), none at the end (9, 6), but 3 and 1 points are not reliable change
        ((12, 9), (7, 6), (True, False)),
        # recovered (20 -> 9, 2 -> 7 are both below caseness) with a reliable improvement of 11,
        # but the GAD-7 rose 5 >= 4 points: a reliable deterioration
        ((20, 9), (2, 7), (True, False)),
        # still a case at the end (12 >= 10)
        ((20, 12), (10, 5), (False, False)),
        # not a case at the start (8 < 10, 6 < 8): not applicable
        ((8, 2), (6, 1), (None, None)),
        # only one instrument: caseness at the end cannot be judged
        ((22, 6), None, (None, None)),
    ],
)
def test_recovery_and_reliable_recovery_by_hand(tenant, phq9, gad7, expected):
    clinic = _course(tenant, phq9, gad7)
    for instrument in ("phq9", "gad7"):
        trend = clinic.trend(instrument)
        assert (trend["recovery"], trend["reliable_recovery"]) == expected, instrument


def test_no_scores_means_no_outcome(tenant):
    trend = Clinic(tenant).trend()
    assert (trend["recovery"], trend["reliable_recovery"]) == (None, None)
