"""Alert table and its API shapes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import Index, String
from sqlmodel import Field, SQLModel

from kap_outcomes.clinical.safety import AlertKind, AlertLevel
from kap_outcomes.db import UTCDateTime, new_id, utcnow
from kap_outcomes.patterns import FREE_TEXT_PATTERN


class AlertStatus(StrEnum):
    open = "open"
    acknowledged = "acknowledged"
    resolved = "resolved"


class Alert(SQLModel, table=True):
    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_org_status_created", "organisation_id", "status", "created_at"),
        Index("ix_alerts_patient_status", "patient_id", "status"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    organisation_id: str = Field(foreign_key="organisations.id", max_length=36)
    patient_id: str = Field(foreign_key="patients.id", max_length=36)
    assessment_id: str = Field(foreign_key="assessments.id", index=True, max_length=36)
    level: str = Field(sa_type=String(16))
    kind: str = Field(sa_type=String(32))
    status: AlertStatus = Field(default=AlertStatus.open, sa_type=String(16))
    reason: str = Field(max_length=500)
    suggested_action: str = Field(max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    acknowledged_by: str | None = Field(default=None, max_length=36)
    acknowledged_note: str | None = Field(default=None, max_length=2000)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_by: str | None = Field(default=None, max_length=36)
    resolved_note: str | None = Field(default=None, max_length=2000)


class AlertSummary(BaseModel):
    id: str
    level: AlertLevel
    kind: AlertKind
    status: AlertStatus


class AlertPublic(BaseModel):
    id: str
    patient_id: str
    assessment_id: str
    level: AlertLevel
    kind: AlertKind
    status: AlertStatus
    reason: str
    suggested_action: str
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    acknowledged_note: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolved_note: str | None


# No NUL: PostgreSQL cannot store it in text (it would be a 500, not a 422).
Note = Annotated[str, StringConstraints(max_length=2000, pattern=FREE_TEXT_PATTERN)]


class AlertAction(BaseModel):
    """Body of acknowledge and resolve: an optional note for the record."""

    model_config = ConfigDict(extra="forbid")

    note: Note | None = None
