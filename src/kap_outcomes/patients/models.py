"""Patient table and its API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlmodel import Field, SQLModel, UniqueConstraint

from kap_outcomes.db import UTCDateTime, new_id, utcnow

EXTERNAL_ID_PATTERN = r"^[A-Za-z0-9._:\-]+$"
ExternalId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=EXTERNAL_ID_PATTERN),
]


class Patient(SQLModel, table=True):
    __tablename__ = "patients"
    __table_args__ = (UniqueConstraint("organisation_id", "external_id"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    organisation_id: str = Field(foreign_key="organisations.id", index=True, max_length=36)
    external_id: str = Field(max_length=128)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PatientCreate(BaseModel):
    """A pseudonymous patient: the EHR keeps identity, we keep only its reference."""

    model_config = ConfigDict(extra="forbid")

    external_id: ExternalId


class PatientPublic(BaseModel):
    id: str
    external_id: str
    created_at: datetime
    active_course_id: str | None = None
