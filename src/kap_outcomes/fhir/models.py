"""What FHIR needs beyond the assessment itself: the identifier a client gave its form."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from kap_outcomes.db import UTCDateTime, new_id, utcnow


class FhirIdentifier(SQLModel, table=True):
    """``QuestionnaireResponse.identifier`` (or the one named by ``If-None-Exist``).

    Not unique on purpose: FHIR's conditional create answers 412 when several resources
    match, and two racing conditional creates can both store one.
    """

    __tablename__ = "fhir_identifiers"
    __table_args__ = (Index("ix_fhir_identifiers_lookup", "organisation_id", "system", "value"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    organisation_id: str = Field(foreign_key="organisations.id", max_length=36)
    assessment_id: str = Field(foreign_key="assessments.id", index=True, max_length=36)
    system: str = Field(max_length=255)
    value: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
