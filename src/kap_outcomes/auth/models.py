"""Organisations (tenants) and bearer tokens, stored only as hashes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints
from pydantic import Field as PydanticField
from sqlalchemy import Column, ForeignKey, Integer, String
from sqlmodel import Field, SQLModel

from kap_outcomes.auth.roles import Role as Role  # re-exported: its home before roles.py
from kap_outcomes.db import UTCDateTime, new_id, utcnow
from kap_outcomes.timing import Timestamp


class Organisation(SQLModel, table=True):
    __tablename__ = "organisations"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    slug: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Server defaults, not Python ones: an insert that names only the older columns (as at
    # earlier revisions) stays valid.
    timezone: str = Field(
        default="UTC",
        sa_column=Column(String(64), nullable=False, server_default="UTC"),
    )
    """IANA name: the calendar of every date shown to people (organisation/)."""
    settings_version: int = Field(
        default=1, sa_column=Column(Integer, nullable=False, server_default="1")
    )
    """The settings' ETag; +1 per change."""


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


class EnrollmentCode(SQLModel, table=True):
    """A single-use, short-lived code a patient's app exchanges for its own token (hashed)."""

    __tablename__ = "enrollment_codes"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    organisation_id: str = Field(foreign_key="organisations.id", max_length=36)
    patient_id: str = Field(foreign_key="patients.id", index=True, max_length=36)
    code_hash: str = Field(max_length=64, unique=True)
    created_by: str = Field(max_length=36)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    token_id: str | None = Field(default=None, max_length=36)


TokenLabel = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1F\x7F]*$")
]


class TokenCreate(BaseModel):
    """A new API token of the caller's organisation. ``patient_id`` for, and only for, the
    patient role."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    label: TokenLabel | None = None
    expires_at: Timestamp | None = None
    patient_id: str | None = PydanticField(default=None, max_length=36, pattern=r"^[A-Za-z0-9\-]+$")


class TokenPublic(BaseModel):
    """A token's metadata: never its secret."""

    id: str
    role: Role
    label: str | None
    patient_id: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenIssued(TokenPublic):
    token: str = PydanticField(description="The secret, shown this once and never again.")


class EnrollmentIssued(BaseModel):
    id: str = PydanticField(description="The enrollment's id (never its code)")
    code: str = PydanticField(description="Single use; give it to the patient's app only.")
    expires_at: datetime


class EnrollmentPublic(BaseModel):
    """An enrollment as it stands: never its code."""

    id: str
    patient_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


class EnrollRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = PydanticField(min_length=1, max_length=64)


class Enrolled(BaseModel):
    token: str = PydanticField(description="The app's own patient token, shown this once.")
    token_id: str = PydanticField(description="Its id: what an admin revokes it by")
    patient_id: str
