"""Assessment table and its API shapes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints
from sqlalchemy import Column, Index, String
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel, UniqueConstraint

from kap_outcomes.alerts.models import AlertSummary
from kap_outcomes.clinical.instruments import Instrument
from kap_outcomes.clinical.scoring import Risk, Severity
from kap_outcomes.db import JSONType, UTCDateTime, new_id, utcnow
from kap_outcomes.http import FREE_TEXT_PATTERN, ID_PATTERN
from kap_outcomes.timing import PastTimestamp


class Source(StrEnum):
    patient = "patient"
    clinician = "clinician"
    ehr = "ehr"


class AssessmentStatus(StrEnum):
    """The FHIR QuestionnaireResponse/Observation statuses a version can have."""

    final = "final"
    amended = "amended"
    entered_in_error = "entered-in-error"


class Assessment(SQLModel, table=True):
    """The current version of an assessment; earlier versions live in assessment_revisions."""

    __tablename__ = "assessments"
    __table_args__ = (
        Index("ix_assessments_patient_administered", "patient_id", "administered_at", "id"),
    )

    id: str = SQLField(default_factory=new_id, primary_key=True, max_length=36)
    organisation_id: str = SQLField(foreign_key="organisations.id", index=True, max_length=36)
    patient_id: str = SQLField(foreign_key="patients.id", max_length=36)
    course_id: str | None = SQLField(default=None, foreign_key="courses.id", max_length=36)
    session_id: str | None = SQLField(default=None, foreign_key="care_sessions.id", max_length=36)
    instrument: Instrument = SQLField(sa_type=String(8))
    items: list[int | None] = SQLField(sa_column=Column(JSONType, nullable=False))
    difficulty: int | None = None
    administered_at: datetime = SQLField(sa_type=UTCDateTime)
    recorded_at: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime)
    source: Source = SQLField(sa_type=String(16))
    valid: bool
    total: int | None = None
    raw_total: float | None = None
    prorated: bool = False
    missing_items: int = 0
    severity: str | None = SQLField(default=None, max_length=24)
    risk: str | None = SQLField(default=None, max_length=16)
    subscores: dict[str, int] = SQLField(sa_column=Column(JSONType, nullable=False))
    flags: list[str] = SQLField(sa_column=Column(JSONType, nullable=False))
    version: int = 1
    status: AssessmentStatus = SQLField(default=AssessmentStatus.final, sa_type=String(16))
    version_at: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime)
    recorded_by: str | None = SQLField(default=None, max_length=36)
    version_reason: str | None = SQLField(default=None, max_length=500)


class AssessmentRevision(SQLModel, table=True):
    """A superseded version of an assessment, kept as it was (corrections never overwrite)."""

    __tablename__ = "assessment_revisions"
    __table_args__ = (UniqueConstraint("assessment_id", "version"),)

    id: str = SQLField(default_factory=new_id, primary_key=True, max_length=36)
    organisation_id: str = SQLField(foreign_key="organisations.id", max_length=36)
    assessment_id: str = SQLField(foreign_key="assessments.id", max_length=36)
    version: int
    status: AssessmentStatus = SQLField(sa_type=String(16))
    items: list[int | None] = SQLField(sa_column=Column(JSONType, nullable=False))
    difficulty: int | None = None
    administered_at: datetime = SQLField(sa_type=UTCDateTime)
    valid: bool
    total: int | None = None
    raw_total: float | None = None
    prorated: bool = False
    missing_items: int = 0
    severity: str | None = SQLField(default=None, max_length=24)
    risk: str | None = SQLField(default=None, max_length=16)
    subscores: dict[str, int] = SQLField(sa_column=Column(JSONType, nullable=False))
    flags: list[str] = SQLField(sa_column=Column(JSONType, nullable=False))
    version_at: datetime = SQLField(sa_type=UTCDateTime)
    recorded_by: str | None = SQLField(default=None, max_length=36)
    version_reason: str | None = SQLField(default=None, max_length=500)


Item = StrictInt | None
Reason = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=FREE_TEXT_PATTERN)]


class AssessmentCreate(BaseModel):
    """A completed questionnaire. Items are integers or null (not answered)."""

    model_config = ConfigDict(extra="forbid")

    instrument: Instrument
    items: list[Item] = Field(max_length=64)
    difficulty: StrictInt | None = Field(default=None, ge=0, le=3)
    administered_at: PastTimestamp
    session_id: str | None = Field(default=None, max_length=36, pattern=ID_PATTERN)
    course_id: str | None = Field(default=None, max_length=36, pattern=ID_PATTERN)
    source: Source = Source.clinician


class AssessmentPublic(BaseModel):
    id: str
    patient_id: str
    course_id: str | None
    session_id: str | None
    instrument: Instrument
    items: list[int | None]
    difficulty: int | None
    administered_at: datetime
    recorded_at: datetime
    source: Source
    valid: bool
    total: int | None
    raw_total: float | None
    prorated: bool
    missing_items: int
    severity: Severity | None
    subscores: dict[str, int]
    risk: Risk | None
    flags: list[str]
    version: int = Field(description="1 for the form as first recorded; +1 per correction")
    status: AssessmentStatus
    alerts: list[AlertSummary]

    @classmethod
    def from_row(cls, row: Any, alerts: list[AlertSummary]) -> AssessmentPublic:
        return cls(
            id=row.id,
            patient_id=row.patient_id,
            course_id=row.course_id,
            session_id=row.session_id,
            instrument=row.instrument,
            items=row.items,
            difficulty=row.difficulty,
            administered_at=row.administered_at,
            recorded_at=row.recorded_at,
            source=row.source,
            valid=row.valid,
            total=row.total,
            raw_total=row.raw_total,
            prorated=row.prorated,
            missing_items=row.missing_items,
            severity=row.severity,
            subscores=row.subscores,
            risk=row.risk,
            flags=row.flags,
            version=row.version,
            status=row.status,
            alerts=alerts,
        )


class AssessmentAmend(BaseModel):
    """A correction: the answers as they should have been recorded, and why."""

    model_config = ConfigDict(extra="forbid")

    items: list[Item] = Field(max_length=64)
    reason: Reason
    difficulty: StrictInt | None = Field(default=None, ge=0, le=3)
    administered_at: PastTimestamp | None = None


class AssessmentRetract(BaseModel):
    """Marks an assessment entered in error (for example, recorded for the wrong patient)."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason


class AssessmentVersion(BaseModel):
    """One version in an assessment's history: what was recorded, when, by whom and why."""

    version: int
    status: AssessmentStatus
    items: list[int | None]
    difficulty: int | None
    administered_at: datetime
    valid: bool
    total: int | None
    severity: Severity | None
    risk: Risk | None
    flags: list[str]
    recorded_at: datetime
    recorded_by: str | None
    reason: str | None


class AssessmentHistory(BaseModel):
    assessment_id: str
    current_version: int
    versions: list[AssessmentVersion]
