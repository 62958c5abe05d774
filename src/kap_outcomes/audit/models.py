"""Audit events: append-only (nothing in the code updates or deletes them)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from kap_outcomes.db import UTCDateTime, new_id, utcnow


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_org_at", "organisation_id", "at", "id"),
        Index("ix_audit_events_org_patient_at", "organisation_id", "patient_id", "at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    organisation_id: str = Field(foreign_key="organisations.id", max_length=36)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    actor: str = Field(max_length=36)
    role: str = Field(max_length=16)
    action: str = Field(max_length=120)
    resource_type: str = Field(max_length=40)
    resource_id: str | None = Field(default=None, max_length=80)
    patient_id: str | None = Field(default=None, max_length=36)
    status: int
    request_id: str | None = Field(default=None, max_length=64)


class AuditEventPublic(BaseModel):
    id: str
    at: datetime
    actor: str
    role: str
    action: str
    resource_type: str
    resource_id: str | None
    patient_id: str | None
    status: int
    request_id: str | None
