"""The caseload's per-patient summary table and its API shapes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import Index, String
from sqlmodel import Field, SQLModel

from kap_outcomes.clinical.scoring import Severity
from kap_outcomes.db import UTCDateTime
from kap_outcomes.signals.models import AlertLevel, BoosterStatus


class PatientSummary(SQLModel, table=True):
    """One row per patient: what the caseload sorts and shows, kept by the read side.

    Writes that change a patient's clinical picture mark the row ``stale`` (one indexed
    UPDATE); the caseload recomputes the organisation's stale rows in bulk before paging.
    ``data_version`` counts those writes, so a recompute that raced with a newer write never
    clears the newer mark.
    """

    __tablename__ = "patient_summaries"
    __table_args__ = (
        Index("ix_patient_summaries_org_rank", "organisation_id", "sort_rank", "patient_id"),
        Index("ix_patient_summaries_org_stale", "organisation_id", "stale"),
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
    sort_rank: int = 5
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
    alert_level: AlertLevel
    open_alerts: int
    phq9_due: bool
    days_since_last_phq9: int | None
    policy_version: str
