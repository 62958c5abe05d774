"""The tables of bulk export: export jobs, and the clinic-defined patient groups (cohorts)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlmodel import Field, SQLModel

from kap_outcomes.db import UTCDateTime, new_id, utcnow


class BulkExport(SQLModel, table=True):
    """One ``$export`` request: what it asked for, who asked, and how far it got.

    ``status`` goes ``queued`` → ``running`` → ``completed`` or ``failed``; a worker owns a
    running export while its lease lasts (a dead worker's export is claimed again). Cancelling
    deletes the row (the running worker notices and stops); an export is deleted with its
    files once ``expires_at`` has passed.
    """

    __tablename__ = "bulk_exports"
    __table_args__ = (
        Index("ix_bulk_exports_status", "status", "created_at"),
        Index("ix_bulk_exports_expires", "expires_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    organisation_id: str = Field(foreign_key="organisations.id", index=True, max_length=36)
    requested_by: str = Field(max_length=36)
    """The token (or SMART client) that kicked it off."""
    level: str = Field(sa_type=String(8))  # system | patient | group
    group_id: str | None = Field(default=None, max_length=36)
    types: str = Field(sa_type=String(200))  # resource types, comma-separated
    since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    request_url: str = Field(sa_type=Text)
    status: str = Field(default="queued", sa_type=String(12))
    progress: str | None = Field(default=None, max_length=200)
    output: str | None = Field(default=None, sa_type=Text)  # JSON: [{"type", "count"}]
    error: str | None = Field(default=None, max_length=200)  # never patient data
    attempts: int = Field(default=0)
    lease_owner: str | None = Field(default=None, max_length=36)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    transaction_time: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PatientGroup(SQLModel, table=True):
    """A clinic-defined cohort of its patients (FHIR ``Group``, ``type: person``)."""

    __tablename__ = "patient_groups"
    __table_args__ = (Index("ix_patient_groups_org_created", "organisation_id", "created_at"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    organisation_id: str = Field(foreign_key="organisations.id", max_length=36)
    name: str = Field(max_length=200)
    created_by: str = Field(max_length=36)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PatientGroupMember(SQLModel, table=True):
    __tablename__ = "patient_group_members"

    group_id: str = Field(foreign_key="patient_groups.id", primary_key=True, max_length=36)
    patient_id: str = Field(foreign_key="patients.id", primary_key=True, max_length=36)
    organisation_id: str = Field(foreign_key="organisations.id", max_length=36)
