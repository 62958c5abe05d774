"""API shapes of trends and signals (api-contract.md)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel
from sqlmodel import Field, SQLModel
from typing_extensions import TypeAliasType

from kap_outcomes.clinical import booster
from kap_outcomes.clinical.scoring import Severity
from kap_outcomes.clinical.trend import TrendLabel
from kap_outcomes.db import UTCDateTime

# Named, so that the OpenAPI document has one enum of each (not one per field using it).
# A patient's safety level: "none" or one of clinical.safety.AlertLevel's values (the one
# AlertLevel; tests/test_architecture.py checks the two agree).
SafetyLevel = TypeAliasType("SafetyLevel", Literal["none", "review", "urgent", "emergency"])
BoosterStatus = TypeAliasType("BoosterStatus", booster.BoosterStatus)
ReasonCode = TypeAliasType("ReasonCode", booster.ReasonCode)


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
    severity: Severity | None
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
    level: SafetyLevel
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


class SignalState(SQLModel, table=True):
    """The last booster status and trend labels the signal watch saw for a patient: what a
    ``signal.changed`` event's ``from`` is."""

    __tablename__ = "signal_states"

    patient_id: str = Field(foreign_key="patients.id", primary_key=True, max_length=36)
    organisation_id: str = Field(foreign_key="organisations.id", max_length=36)
    booster_status: str = Field(max_length=24)
    phq9_trend: str = Field(max_length=24)
    gad7_trend: str = Field(max_length=24)
    updated_at: datetime = Field(sa_type=UTCDateTime)
