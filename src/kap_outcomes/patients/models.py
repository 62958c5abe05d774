"""Patient table and its API shapes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints
from pydantic import Field as ApiField
from sqlalchemy import Index, String
from sqlmodel import Field, SQLModel, UniqueConstraint

from kap_outcomes.db import UTCDateTime, new_id, utcnow

EXTERNAL_ID_PATTERN = r"^[A-Za-z0-9._:\-]+$"
ExternalId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=EXTERNAL_ID_PATTERN),
]

EXTERNAL_ID_SYSTEM = "https://kap-outcomes.dev/fhir/sid/external-id"
"""The identifier system under which ``external_id`` appears on FHIR (our own)."""
IDENTIFIER_SYSTEM_PATTERN = r"^[A-Za-z][A-Za-z0-9+.\-]*:[\x21-\x7E]+$"
IDENTIFIER_VALUE_PATTERN = r"^[\x21-\x7E](?:[\x20-\x7E]*[\x21-\x7E])?$"
MAX_IDENTIFIERS = 20


class PatientIdentifierIn(BaseModel):
    """One of the patient's identifiers in another system (an EHR's MRN, a registry id)."""

    model_config = ConfigDict(extra="forbid")

    system: str = ApiField(
        min_length=1,
        max_length=255,
        pattern=IDENTIFIER_SYSTEM_PATTERN,
        description="An absolute URI (https://ehr.example.org/mrn) or urn:oid:…",
    )
    value: str = ApiField(
        min_length=1,
        max_length=255,
        pattern=IDENTIFIER_VALUE_PATTERN,
        description="Printable ASCII, no leading or trailing space",
    )


def _distinct_identifiers(
    values: list[PatientIdentifierIn] | None,
) -> list[PatientIdentifierIn] | None:
    if values is None:
        return None
    if len({(v.system, v.value) for v in values}) != len(values):
        raise ValueError("an identifier is listed twice")
    if any(v.system == EXTERNAL_ID_SYSTEM for v in values):
        raise ValueError("the external-id system is external_id's own: set external_id")
    return values


Identifiers = Annotated[
    list[PatientIdentifierIn] | None,
    ApiField(max_length=MAX_IDENTIFIERS),
    AfterValidator(_distinct_identifiers),
]


class PatientIdentifier(SQLModel, table=True):
    """An identifier of a patient in another system. One (system, value) names at most one
    patient of an organisation. The values are PHI: never logged, never in an error or a
    URL this service generates."""

    __tablename__ = "patient_identifiers"
    __table_args__ = (
        UniqueConstraint(
            "organisation_id", "system", "value", name="uq_patient_identifiers_org_system_value"
        ),
        Index("ix_patient_identifiers_org_value", "organisation_id", "value"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    organisation_id: str = Field(foreign_key="organisations.id", max_length=36)
    patient_id: str = Field(foreign_key="patients.id", index=True, max_length=36)
    system: str = Field(max_length=255)
    value: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


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
    identifiers: Identifiers = ApiField(
        default=None,
        description="Identifiers in other systems (at most 20); each (system, value) names "
        "one patient of the organisation.",
    )
    age_group: AgeGroup | None = None
    conditions: Conditions = ApiField(
        default=None,
        description="Closed set; left out or null: not recorded; []: recorded, none of the set.",
    )


class PatientUpdate(BaseModel):
    """The identifiers and CMS159 facts of an existing patient; a field left out keeps its
    value, null clears it (not recorded; for identifiers, none). ``identifiers`` replaces the
    whole list. Needs If-Match with the patient's ETag."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    identifiers: Identifiers = None
    age_group: AgeGroup | None = None
    conditions: Conditions = None


class PatientIdentifierPublic(BaseModel):
    system: str
    value: str


class PatientPublic(BaseModel):
    id: str
    external_id: str
    identifiers: list[PatientIdentifierPublic] = []
    age_group: AgeGroup | None = None
    conditions: list[Condition] | None = None
    created_at: datetime
    active_course_id: str | None = None
