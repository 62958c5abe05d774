"""Assessment table and its API shapes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints
from sqlalchemy import Index, String
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel, UniqueConstraint

from kap_outcomes.alerts.models import AlertSummary
from kap_outcomes.clinical.instruments import Instrument
from kap_outcomes.clinical.scoring import Risk, Severity
from kap_outcomes.db import JSONType, NullableJSONType, UTCDateTime, new_id, utcnow
from kap_outcomes.patterns import FREE_TEXT_PATTERN, ID_PATTERN
from kap_outcomes.timing import PastTimestamp
from kap_outcomes.versions import VersionColumns


class Source(StrEnum):
    patient = "patient"
    clinician = "clinician"
    ehr = "ehr"


class AssessmentStatus(StrEnum):
    """The FHIR QuestionnaireResponse/Observation statuses a version can have."""

    final = "final"
    amended = "amended"
    entered_in_error = "entered-in-error"


class Recorded(SQLModel):
    """What a version of an assessment records: its answers and their score, as they were
    (the current version's table and its kept versions' both have these columns)."""

    items: list[int | None] | None = SQLField(default=None, sa_type=NullableJSONType, nullable=True)
    """None: a total-only score (an EHR sent the total without the answers)."""
    item9: int | None = None
    """PHQ-9 item 9 sent beside a total-only score (a form's item 9 is in ``items``)."""
    difficulty: int | None = None
    administered_at: datetime = SQLField(sa_type=UTCDateTime)
    valid: bool
    total: int | None = None
    raw_total: float | None = None
    prorated: bool = False
    missing_items: int = 0
    severity: str | None = SQLField(default=None, max_length=24)
    risk: str | None = SQLField(default=None, max_length=16)
    subscores: dict[str, int] = SQLField(sa_type=JSONType, nullable=False)
    flags: list[str] = SQLField(sa_type=JSONType, nullable=False)


class Assessment(Recorded, VersionColumns, table=True):
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
    recorded_at: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime)
    source: Source = SQLField(sa_type=String(16))
    version: int = 1
    status: AssessmentStatus = SQLField(default=AssessmentStatus.final, sa_type=String(16))


class AssessmentRevision(Recorded, VersionColumns, table=True):
    """A superseded version of an assessment, kept as it was (corrections never overwrite)."""

    __tablename__ = "assessment_revisions"
    __table_args__ = (UniqueConstraint("assessment_id", "version"),)

    id: str = SQLField(default_factory=new_id, primary_key=True, max_length=36)
    organisation_id: str = SQLField(foreign_key="organisations.id", max_length=36)
    assessment_id: str = SQLField(foreign_key="assessments.id", max_length=36)
    version: int
    status: AssessmentStatus = SQLField(sa_type=String(16))


Item = StrictInt | None

_ITEMS_DOC = (
    "The answers, integers or null (not answered), as many as the instrument has; "
    "null or left out for a total-only score."
)
_TOTAL_DOC = (
    "A total-only score (PHQ-9 0-27, GAD-7 0-21) for when only the total is known (an EHR "
    "flowsheet): items must then be null. Used by trends, change and signals like any valid "
    "score; a PHQ-9 total without item9 carries the flag item9_unknown and opens a review "
    "alert of kind safety_item_missing."
)
_ITEM9_DOC = (
    "PHQ-9 item 9 (0-3) of the same administration as a total-only score; judged for "
    "safety as any item 9. Only with a PHQ-9 total (a form's item 9 is in items)."
)
Reason = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=FREE_TEXT_PATTERN)]


class AssessmentCreate(BaseModel):
    """A completed questionnaire (items: integers or null, not answered), or a total-only
    score (``total``, items null)."""

    model_config = ConfigDict(extra="forbid")

    instrument: Instrument
    items: list[Item] | None = Field(default=None, max_length=64, description=_ITEMS_DOC)
    total: StrictInt | None = Field(default=None, description=_TOTAL_DOC)
    item9: StrictInt | None = Field(default=None, description=_ITEM9_DOC)
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
    items: list[int | None] | None = Field(description="null: a total-only score")
    item9: int | None = Field(
        default=None, description="PHQ-9 item 9 sent with a total-only score, else null"
    )
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
    def from_values(cls, values: Mapping[str, Any], alerts: list[AlertSummary]) -> AssessmentPublic:
        """From an assessment's columns (the other columns are left out)."""
        return cls.model_validate({**values, "alerts": alerts})

    @classmethod
    def from_row(cls, row: Assessment, alerts: list[AlertSummary]) -> AssessmentPublic:
        return cls.from_values({name: getattr(row, name) for name in _PUBLIC_COLUMNS}, alerts)


_PUBLIC_COLUMNS = tuple(name for name in AssessmentPublic.model_fields if name != "alerts")
"""The assessment's columns shown, named once: by the fields of ``AssessmentPublic``."""


class AssessmentAmend(BaseModel):
    """A correction: the answers (or the total of a total-only score) as they should have
    been recorded, and why."""

    model_config = ConfigDict(extra="forbid")

    items: list[Item] | None = Field(default=None, max_length=64, description=_ITEMS_DOC)
    total: StrictInt | None = Field(default=None, description=_TOTAL_DOC)
    item9: StrictInt | None = Field(default=None, description=_ITEM9_DOC)
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
    items: list[int | None] | None
    item9: int | None = None
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
