"""The words the dashboard shows for the API's codes (the codes stay visible beside them)."""

from __future__ import annotations

STATUS = {
    "consider_booster": "Consider a booster",
    "watch": "Watch",
    "stable": "Stable",
    "pending": "Awaiting a PHQ-9 since the last dose",
    "in_induction": "In induction",
    "not_applicable": "Not applicable",
}
LEVEL = {"emergency": "Emergency", "urgent": "Urgent", "review": "Review", "none": "None"}
SEVERITY = {
    "minimal": "minimal",
    "mild": "mild",
    "moderate": "moderate",
    "moderately_severe": "moderately severe",
    "severe": "severe",
}
RISK = {"none": "none", "low": "low", "moderate": "moderate", "high": "high"}
TREND = {
    "improving": "improving",
    "worsening": "worsening",
    "stable": "stable",
    "insufficient_data": "not enough scores yet",
}
INSTRUMENT = {"phq9": "PHQ-9", "gad7": "GAD-7", "cssrs": "C-SSRS screener"}
