"""The caseload's per-patient summary table and its API shapes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

import pydantic
from pydantic import BaseModel
from sqlalchemy import Index, String, text
from sqlmodel import Field, SQLModel

from kap_outcomes.clinical.safety import MOST_PRESSING_FIRST
from kap_outcomes.clinical.scoring import Severity
from kap_outcomes.db import UTCDateTime
from kap_outcomes.signals.models import BoosterStatus, SafetyLevel

ALERT_SORT_RANK: Mapping[str, int] = MappingProxyType(
    {level.value: rank for rank, level in enumerate(MOST_PRESSING_FIRST)}
)
"""Caseload order: a patient with an unresolved alert first, by its level (emergency 0,
urgent 1, review 2: derived from clinical.safety's one order of levels)."""
MAX_ALERT_SORT_RANK = len(ALERT_SORT_RANK) - 1
"""sort_rank 0 up to this: exactly the patients with an unresolved alert (an index range)."""
BOOSTER_SORT_RANK: Mapping[str, int] = MappingProxyType(
    {"consider_booster": MAX_ALERT_SORT_RANK + 1, "watch": MAX_ALERT_SORT_RANK + 2}
)
"""Then consider_booster, then watch."""
REST_SORT_RANK = MAX_ALERT_SORT_RANK + 3
"""Then everyone else; ties by patient id."""


class PatientSummary(SQLModel, table=True):
    """One row per patient: what the caseload sorts and shows, kept by the read side.

    Writes that change a patient's clinical picture mark the row ``stale`` (one indexed
    UPDATE); the worker recomputes stale rows in the background, in bounded batches (a read
    recomputes only a handful itself). ``data_version`` counts those writes, so a recompute
    that raced with a newer write never clears the newer mark. ``computed_at`` is the moment
    from which the row's values were computed (the row's creation for a row never computed):
    every write committed before it is reflected in the row.
    """

    __tablename__ = "patient_summaries"
    __table_args__ = (
        Index("ix_patient_summaries_org_rank", "organisation_id", "sort_rank", "patient_id"),
        # Only the stale rows: the lookup of what to recompute costs what is stale, and a
        # partial index stays the plan however old the planner's statistics are.
        Index(
            "ix_patient_summaries_stale",
            "organisation_id",
            "computed_at",
            postgresql_where=text("stale"),
            sqlite_where=text("stale"),
        ),
        Index(
            "ix_patient_summaries_org_status_rank",
            "organisation_id",
            "booster_status",
            "sort_rank",
            "patient_id",
        ),
    )

    patient_id: str = Field(foreign_key="patients.id", primary_key=True, max_length=36)
    organisation_id: str = Field(foreign_key="organisations.id", max_length=36)
    stale: bool = True
    data_version: int = 1
    sort_rank: int = REST_SORT_RANK
    """0 emergency, 1 urgent, 2 review (unresolved alerts), 3 consider_booster, 4 watch, 5 rest."""
    booster_status: str | None = Field(default=None, sa_type=String(24))
    alert_level: str | None = Field(default=None, sa_type=String(16))
    open_alerts: int = 0
    phq9_total: int | None = None
    phq9_severity: str | None = Field(default=None, max_length=24)
    phq9_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    gad7_total: int | None = None
    gad7_severity: str | None = Field(default=None, max_length=24)
    gad7_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    induction_completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    policy_version: str | None = Field(default=None, max_length=16)
    computed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class LatestScore(BaseModel):
    total: int
    severity: Severity | None
    administered_at: datetime


class CaseloadRow(BaseModel):
    patient_id: str
    external_id: str
    phq9: LatestScore | None
    gad7: LatestScore | None
    booster_status: BoosterStatus
    alert_level: SafetyLevel
    open_alerts: int
    phq9_due: bool
    days_since_last_phq9: int | None
    policy_version: str


class CaseloadPage(BaseModel):
    """A caseload page and how fresh the caseload is."""

    data: list[CaseloadRow]
    next_cursor: str | None
    stale_count: int = pydantic.Field(
        ge=0,
        description=(
            "Patients of the organisation whose row does not yet reflect their latest writes "
            "or the current policy; the worker recomputes them in the background. While it is "
            "above 0 their rows, and so the order, may be out of date."
        ),
    )
    as_of: datetime = pydantic.Field(
        description=(
            "Every write committed before this time is reflected in every row (the time of "
            "the read when stale_count is 0)."
        )
    )
