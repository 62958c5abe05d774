"""API shapes of trends and signals (api-contract.md)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from kap_outcomes.clinical.booster import BoosterStatus, ReasonCode
from kap_outcomes.clinical.trend import TrendLabel

AlertLevel = Literal["none", "review", "urgent", "emergency"]


class TrendInstrument(StrEnum):
    phq9 = "phq9"
    gad7 = "gad7"


class ScoreRef(BaseModel):
    assessment_id: str
    administered_at: datetime
    total: int


class ChangePublic(BaseModel):
    """clinical-rules.md section 3; `response`/`remission` null where not applicable."""

    points: int
    percent: float | None
    mcid_met: bool
    reliable_improvement: bool
    reliable_deterioration: bool
    response: bool | None
    remission: bool | None
    minimal: bool
    non_caseness: bool


class TrendLine(BaseModel):
    label: TrendLabel
    slope_per_week: float | None
    projected_change: float | None


class TrendPoint(BaseModel):
    assessment_id: str
    administered_at: datetime
    total: int
    severity: str | None
    smoothed: float
    """EWMA for display only (alpha from the policy); never used by signals."""


class TrendPublic(BaseModel):
    instrument: TrendInstrument
    baseline: ScoreRef | None
    latest: ScoreRef | None
    change: ChangePublic | None
    recovery: bool | None = Field(
        description=(
            "Episode outcome of the course (both instruments): a case at the baseline "
            "(PHQ-9 >= 10 or GAD-7 >= 8) and no case at the latest scores; null when not a case "
            "at the start or when a baseline or latest score of either instrument is missing."
        )
    )
    reliable_recovery: bool | None = Field(
        description=(
            "recovery with a reliable improvement on at least one instrument and a reliable "
            "deterioration on neither; null whenever recovery is null."
        )
    )
    trend: TrendLine
    points: list[TrendPoint]
    policy_version: str


class ReasonPublic(BaseModel):
    code: ReasonCode
    detail: str


class BoosterPublic(BaseModel):
    status: BoosterStatus
    reasons: list[ReasonPublic]
    baseline: int | None
    nadir: int | None
    latest: int | None
    days_since_last_dose: int | None
    scores_used: list[ScoreRef]


class SafetyPublic(BaseModel):
    level: AlertLevel
    """Highest level among the patient's unresolved (open or acknowledged) alerts."""
    open_alerts: int
    """Unresolved alerts (open or acknowledged)."""
    unacknowledged_alerts: int
    """Of those, still `open` (nobody has acknowledged them)."""


class MeasurementPublic(BaseModel):
    phq9_due: bool
    days_since_last_phq9: int | None


class SignalsPublic(BaseModel):
    patient_id: str
    course_id: str | None
    booster: BoosterPublic
    gad7_booster: BoosterPublic
    """The GAD-7 analogue (section 5); it never changes the PHQ-9 status above."""
    safety: SafetyPublic
    measurement: MeasurementPublic
    policy_version: str
    computed_at: datetime
