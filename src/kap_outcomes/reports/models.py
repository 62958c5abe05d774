"""API shapes of the reports (api-contract.md, "Operations and reports").

The cohort shapes read the outcomes/ results by attribute (``model_validate(summary,
from_attributes=True)``): a field named as in outcomes/ needs no copying by hand; the two
renamed ones say which attribute they read (``validation_alias``).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class ReportInstrument(StrEnum):
    phq9 = "phq9"
    gad7 = "gad7"


class GroupBy(StrEnum):
    none = "none"
    route = "route"
    booster_count = "booster_count"


class _FromResult(BaseModel):
    """Built from an outcomes/ dataclass by its attributes."""

    model_config = ConfigDict(from_attributes=True)


class RatePublic(_FromResult):
    n: int = Field(description="Courses where the definition applies and a score exists.")
    events: int
    rate: float | None = Field(description="events / n; null when n is 0.")
    ci_low: float | None = Field(description="95 % Wilson score interval (Wilson 1927).")
    ci_high: float | None


class ChangeSpreadPublic(_FromResult):
    n: int
    median: float | None = Field(description="Median of C - B (negative is improvement).")
    q1: float | None = Field(description="25th percentile, Hyndman-Fan definition 7.")
    q3: float | None = Field(description="75th percentile, Hyndman-Fan definition 7.")


class HorizonPublic(_FromResult):
    weeks: int
    window_days: int = Field(description="The score closest to the horizon within +- this.")
    n_scored: int
    response: RatePublic
    remission: RatePublic | None = Field(description="Null for GAD-7 (not defined).")
    change: ChangeSpreadPublic


class SurvivalStepPublic(_FromResult):
    day: float = Field(description="Days since the first dose.", validation_alias="time")
    at_risk: int
    events: int
    censored: int
    survival: float


class SurvivalPublic(_FromResult):
    n: int
    events: int
    median_days: float | None = Field(validation_alias="median")
    steps: list[SurvivalStepPublic]


class CohortPublic(_FromResult):
    group: str
    n_started: int
    n_followed_up: int
    horizons: list[HorizonPublic]
    time_to_response: SurvivalPublic
    time_to_relapse: SurvivalPublic = Field(
        description="Time to a confirmed relapse (booster signal relapse_confirmed)."
    )


class OutcomesReport(CohortPublic):
    """The whole cohort; `groups` splits it when group_by is not none."""

    instrument: ReportInstrument
    period_from: date
    period_to: date
    group_by: GroupBy
    policy_version: str
    as_of: datetime
    groups: list[CohortPublic]


class StratumPublic(BaseModel):
    age_group: str = Field(description='"12-17", "18+", or "all".')
    denominator: int
    exclusions: int
    numerator: int
    rate: float | None = Field(description="numerator / (denominator - exclusions).")
    ci_low: float | None
    ci_high: float | None


class Cms159Report(BaseModel):
    measure: str = "CMS159"
    period_start: date
    period_end: date
    identification_period_start: date
    identification_period_end: date = Field(description="Excluded (a half-open period).")
    strata: list[StratumPublic]
    total: StratumPublic
    not_evaluable: int = Field(
        description="Patients with an index-qualifying PHQ-9 who cannot be evaluated: "
        "conditions or age group not recorded."
    )
    not_evaluable_by_reason: dict[str, int]
    without_depression: int = Field(
        description="Index-qualifying PHQ-9 but recorded conditions without depression or "
        "dysthymia: outside the measure by its definition."
    )
    as_of: datetime
