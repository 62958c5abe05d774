"""Patient table and its API shapes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints
from pydantic import Field as ApiField
from sqlalchemy import String
from sqlmodel import Field, SQLModel, UniqueConstraint

from kap_outcomes.db import UTCDateTime, new_id, utcnow

EXTERNAL_ID_PATTERN = r"^[A-Za-z0-9._:\-]+$"
ExternalId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=EXTERNAL_ID_PATTERN),
]

AgeGroup = Literal["12-17", "18+"]
"""The age group CMS159 stratifies by; no birth date is ever stored."""


class Condition(StrEnum):
    """The closed set of conditions a patient may carry (CMS159's diagnosis and exclusions);
    no diagnosis code beyond it is stored."""

    depression = "depression"
    dysthymia = "dysthymia"
    bipolar_disorder = "bipolar_disorder"
    personality_disorder = "personality_disorder"
    psychotic_disorder = "psychotic_disorder"
    pervasive_developmental_disorder = "pervasive_developmental_disorder"
    hospice_or_palliative_care = "hospice_or_palliative_care"
    deceased = "deceased"


def _no_repeats(values: list[Condition] | None) -> list[Condition] | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError("a condition is listed twice")
    return values


Conditions = Annotated[
    list[Condition] | None,
    ApiField(max_length=len(Condition), json_schema_extra={"uniqueItems": True}),
    AfterValidator(_no_repeats),
]


def conditions_to_column(values: list[Condition] | None) -> str | None:
    """Stored as the sorted names joined by commas; None (not recorded) stays NULL and an
    empty list (recorded: none of the set) is the empty string."""
    return None if values is None else ",".join(sorted(v.value for v in values))


def conditions_from_column(value: str | None) -> list[Condition] | None:
    if value is None:
        return None
    return [Condition(v) for v in value.split(",") if v]


class Patient(SQLModel, table=True):
    __tablename__ = "patients"
    __table_args__ = (UniqueConstraint("organisation_id", "external_id"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    organisation_id: str = Field(foreign_key="organisations.id", index=True, max_length=36)
    external_id: str = Field(max_length=128)
    age_group: str | None = Field(default=None, sa_type=String(8))
    conditions: str | None = Field(default=None, sa_type=String(300))
    """Comma-separated `Condition` names; NULL: not recorded."""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PatientCreate(BaseModel):
    """A pseudonymous patient: the EHR keeps identity, we keep only its reference."""

    model_config = ConfigDict(extra="forbid")

    external_id: ExternalId
    age_group: AgeGroup | None = None
    conditions: Conditions = ApiField(
        default=None,
        description="Closed set; left out or null: not recorded; []: recorded, none of the set.",
    )


class PatientUpdate(BaseModel):
    """The CMS159 facts of an existing patient; a field left out keeps its value, null clears
    it (not recorded). Needs If-Match with the patient's ETag."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    age_group: AgeGroup | None = None
    conditions: Conditions = None


class PatientPublic(BaseModel):
    id: str
    external_id: str
    age_group: AgeGroup | None = None
    conditions: list[Condition] | None = None
    created_at: datetime
    active_course_id: str | None = None
