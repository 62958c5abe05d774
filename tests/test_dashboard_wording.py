"""The dashboard's words for the API's codes: every code has some, and they read as written."""

from __future__ import annotations

from kap_outcomes.dashboard import wording


def test_the_words_for_each_code():
    assert wording.STATUS == {
        "not_applicable": "Not applicable",
        "in_induction": "In induction",
        "pending": "Awaiting a PHQ-9 since the last dose",
        "stable": "Stable",
        "watch": "Watch",
        "consider_booster": "Consider a booster",
    }
    assert wording.LEVEL == {
        "none": "None",
        "review": "Review",
        "urgent": "Urgent",
        "emergency": "Emergency",
    }
    assert wording.SEVERITY == {
        "minimal": "minimal",
        "mild": "mild",
        "moderate": "moderate",
        "moderately_severe": "moderately severe",
        "severe": "severe",
    }
    assert wording.RISK == {"none": "none", "low": "low", "moderate": "moderate", "high": "high"}
    assert wording.TREND == {
        "improving": "improving",
        "worsening": "worsening",
        "stable": "stable",
        "insufficient_data": "not enough scores yet",
    }
    assert wording.INSTRUMENT == {"phq9": "PHQ-9", "gad7": "GAD-7", "cssrs": "C-SSRS screener"}
