"""Organisations (tenants) and bearer tokens, stored only as hashes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, String
from sqlmodel import Field, SQLModel

from kap_outcomes.db import UTCDateTime, new_id, utcnow


class Role(StrEnum):
    admin = "admin"
    clinician = "clinician"
    integration = "integration"
    patient = "patient"


class Organisation(SQLModel, table=True):
    __tablename__ = "organisations"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    slug: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    organisation_id: str = Field(foreign_key="organisations.id", index=True, max_length=36)
    role: Role = Field(sa_type=String(16))
    label: str | None = Field(default=None, max_length=200)
    token_hash: str = Field(max_length=64, unique=True)
    patient_id: str | None = Field(
        default=None,
        sa_column=Column(String(36), ForeignKey("patients.id"), nullable=True),
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
