"""Policy versions table and its API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from kap_outcomes.db import JSONType, UTCDateTime, new_id, utcnow


class PolicyVersion(SQLModel, table=True):
    """One stored version of an organisation's policy; versions are never changed or deleted."""

    __tablename__ = "policy_versions"
    __table_args__ = (UniqueConstraint("organisation_id", "version"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    organisation_id: str = Field(foreign_key="organisations.id", max_length=36)
    version: int
    document: dict[str, Any] = Field(sa_column=Column(JSONType, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: str = Field(max_length=36)


class InstrumentThresholds(BaseModel):
    """Point thresholds of one instrument (see clinical-rules.md sections 3-5)."""

    model_config = ConfigDict(extra="forbid")

    mcid: int
    reliable_change: int
    caseness: int
    response_min_baseline: int
    remission_min_baseline: int | None
    remission_below: int | None
    minimal_below: int
    relapse_min_score: int
    rise_from_nadir: int


class PolicyDocument(BaseModel):
    """Every tunable threshold. In a PUT, a field left out takes its documented default."""

    model_config = ConfigDict(extra="forbid")

    phq9: InstrumentThresholds
    gad7: InstrumentThresholds
    response_fraction: float
    baseline_lookback_days: int
    trend_min_scores: int
    trend_min_span_days: int
    trend_window_scores: int
    trend_window_days: int
    ewma_alpha: float
    induction_doses: int
    response_lost_fraction: float
    relapse_confirmation_min_scores: int
    relapse_confirmation_min_days: int
    gains_half_lost_fraction: float
    cadence_early_period_days: int
    cadence_early_interval_days: int
    cadence_late_interval_days: int


class PolicyPublic(BaseModel):
    policy_version: str
    """`default` (version 0, the documented values) or `v1`, `v2`, …"""
    version: int
    document: PolicyDocument
    created_at: datetime | None
    created_by: str | None
    """The token that stored this version; null for the defaults."""
