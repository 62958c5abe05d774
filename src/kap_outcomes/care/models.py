"""Courses and sessions: tables and API shapes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import Float, Index, String, text
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel, UniqueConstraint

from kap_outcomes.clinical.dose import DOSE_MAX_MG, DOSE_MIN_MG
from kap_outcomes.db import UTCDateTime, new_id, utcnow
from kap_outcomes.patterns import FREE_TEXT_PATTERN, ID_PATTERN
from kap_outcomes.timing import PastTimestamp
from kap_outcomes.versions import VersionColumns


class SessionKind(StrEnum):
    intake = "intake"
    preparation = "preparation"
    dosing = "dosing"
    booster = "booster"
    integration = "integration"
    follow_up = "follow_up"


DOSE_KINDS = frozenset({SessionKind.dosing, SessionKind.booster})


class SessionStatus(StrEnum):
    """A version's status, as for assessments (the FHIR Encounter/Procedure vocabulary)."""

    final = "final"
    amended = "amended"
    entered_in_error = "entered-in-error"


class DoseRoute(StrEnum):
    iv = "iv"
    im = "im"
    sublingual = "sublingual"
    oral = "oral"
    intranasal = "intranasal"


class Course(SQLModel, table=True):
    __tablename__ = "courses"
    __table_args__ = (
        Index("ix_courses_patient_started", "patient_id", "started_at"),
        # at most one active course per patient, whatever races the service may lose
        Index(
            "uq_courses_patient_active",
            "patient_id",
            unique=True,
            postgresql_where=text("ended_at IS NULL"),
            sqlite_where=text("ended_at IS NULL"),
        ),
    )

    id: str = SQLField(default_factory=new_id, primary_key=True, max_length=36)
    organisation_id: str = SQLField(foreign_key="organisations.id", index=True, max_length=36)
    patient_id: str = SQLField(foreign_key="patients.id", max_length=36)
    label: str | None = SQLField(default=None, max_length=200)
    induction_doses: int = 6
    started_at: datetime = SQLField(sa_type=UTCDateTime)
    ended_at: datetime | None = SQLField(default=None, sa_type=UTCDateTime)
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime)


class CareSession(VersionColumns, table=True):
    """A clinical session; named so as not to clash with a database session."""

    __tablename__ = "care_sessions"
    __table_args__ = (Index("ix_care_sessions_patient_occurred", "patient_id", "occurred_at"),)

    id: str = SQLField(default_factory=new_id, primary_key=True, max_length=36)
    organisation_id: str = SQLField(foreign_key="organisations.id", index=True, max_length=36)
    patient_id: str = SQLField(foreign_key="patients.id", max_length=36)
    course_id: str | None = SQLField(default=None, foreign_key="courses.id", max_length=36)
    kind: SessionKind = SQLField(sa_type=String(16))
    occurred_at: datetime = SQLField(sa_type=UTCDateTime)
    dose_route: DoseRoute | None = SQLField(default=None, sa_type=String(16))
    dose_amount_mg: float | None = SQLField(default=None, sa_type=Float)
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = 1
    status: SessionStatus = SQLField(default=SessionStatus.final, sa_type=String(16))


class CareSessionRevision(VersionColumns, table=True):
    """A superseded version of a session, kept as it was (corrections never overwrite)."""

    __tablename__ = "care_session_revisions"
    __table_args__ = (UniqueConstraint("session_id", "version"),)

    id: str = SQLField(default_factory=new_id, primary_key=True, max_length=36)
    organisation_id: str = SQLField(foreign_key="organisations.id", max_length=36)
    session_id: str = SQLField(foreign_key="care_sessions.id", max_length=36)
    version: int
    status: SessionStatus = SQLField(sa_type=String(16))
    kind: SessionKind = SQLField(sa_type=String(16))
    occurred_at: datetime = SQLField(sa_type=UTCDateTime)
    dose_route: DoseRoute | None = SQLField(default=None, sa_type=String(16))
    dose_amount_mg: float | None = SQLField(default=None, sa_type=Float)


# No NUL: PostgreSQL cannot store it in text (it would be a 500, not a 422).
Label = Annotated[str, StringConstraints(max_length=200, pattern=FREE_TEXT_PATTERN)]


class CourseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    started_at: PastTimestamp | None = None
    induction_doses: int = Field(
        default=6,
        ge=1,
        le=50,
        strict=True,
        description="Left out: the organisation's policy value (6 unless an admin changed it).",
    )
    label: Label | None = None


class CoursePublic(BaseModel):
    id: str
    patient_id: str
    label: str | None
    induction_doses: int
    started_at: datetime
    ended_at: datetime | None
    active: bool


class Dose(BaseModel):
    model_config = ConfigDict(extra="forbid")

    route: DoseRoute
    amount_mg: float = Field(
        ge=DOSE_MIN_MG,
        le=DOSE_MAX_MG,
        strict=True,  # a JSON number: not true, not "50"
        allow_inf_nan=False,
        description="Milligrams of ketamine, from 1 to 1000.",
    )


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: SessionKind
    occurred_at: PastTimestamp
    course_id: str | None = Field(default=None, max_length=36, pattern=ID_PATTERN)
    dose: Dose | None = None
    distinct: bool = Field(
        default=False,
        strict=True,
        description=(
            "true: a second dose within 60 minutes of another is really a separate session "
            "(otherwise it is refused as a duplicate)."
        ),
    )


class SessionPublic(BaseModel):
    id: str
    patient_id: str
    course_id: str | None
    kind: SessionKind
    occurred_at: datetime
    dose: Dose | None
    created_at: datetime
    version: int = Field(default=1, description="1 as first recorded; +1 per correction")
    status: SessionStatus = SessionStatus.final


Reason = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=FREE_TEXT_PATTERN)]


class SessionAmend(BaseModel):
    """A correction: what changes (left out: unchanged), and why."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason
    occurred_at: PastTimestamp | None = None
    kind: SessionKind | None = None
    dose: Dose | None = Field(
        default=None, description="Left out: unchanged; null: no dose (a non-dosing kind)."
    )
    distinct: bool = Field(
        default=False,
        strict=True,
        description="As when recording: the corrected dose is not a duplicate of one nearby.",
    )


class SessionRetract(BaseModel):
    """Marks a session entered in error (for example, a dose entered twice)."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason


class SessionVersion(BaseModel):
    """One version in a session's history: what was recorded, when, by whom and why."""

    version: int
    status: SessionStatus
    kind: SessionKind
    occurred_at: datetime
    dose: Dose | None
    recorded_at: datetime
    recorded_by: str | None
    reason: str | None


class SessionHistory(BaseModel):
    session_id: str
    patient_id: str
    current_version: int
    versions: list[SessionVersion]
