"""Assessment table and its API shapes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy import Column, Index, String
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from kap_outcomes.alerts.models import AlertSummary
from kap_outcomes.clinical.instruments import Instrument
from kap_outcomes.db import JSONType, UTCDateTime, new_id, utcnow
from kap_outcomes.http import ID_PATTERN
from kap_outcomes.timing import NotInFuture


class Source(StrEnum):
    patient = "patient"
    clinician = "clinician"
    ehr = "ehr"


class Assessment(SQLModel, table=True):
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


Item = StrictInt | None


class AssessmentCreate(BaseModel):
    """A completed questionnaire. Items are integers or null (not answered)."""

    model_config = ConfigDict(extra="forbid")

    instrument: Instrument
    items: list[Item] = Field(max_length=64)
    difficulty: StrictInt | None = Field(default=None, ge=0, le=3)
    administered_at: Annotated[AwareDatetime, NotInFuture]
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
    severity: str | None
    subscores: dict[str, int]
    risk: str | None
    flags: list[str]
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
            alerts=alerts,
        )
