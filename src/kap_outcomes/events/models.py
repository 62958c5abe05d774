"""The event log's tables and the Event as clients see it.

``events`` is append-only: a use case writes its events in its own transaction (the
transactional outbox), so an event exists exactly when the change it reports committed.
Its position in the log is ``(tx, seq)``: ``seq`` is assigned at insert; ``tx`` is the
inserting transaction's id on PostgreSQL (0 on SQLite, whose single writer commits in
``seq`` order). Readers on PostgreSQL only read rows whose transaction is older than every
transaction still running, so a row can never appear behind a cursor that has passed it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import BigInteger, Column, Identity, Index, Integer
from sqlmodel import Field, SQLModel

from kap_outcomes.db import JSONType, UTCDateTime


class EventType(StrEnum):
    assessment_submitted = "assessment.submitted"
    assessment_amended = "assessment.amended"
    assessment_retracted = "assessment.retracted"
    alert_opened = "alert.opened"
    alert_acknowledged = "alert.acknowledged"
    alert_resolved = "alert.resolved"
    signal_changed = "signal.changed"
    patient_created = "patient.created"
    course_opened = "course.opened"
    session_recorded = "session.recorded"
    session_amended = "session.amended"
    session_retracted = "session.retracted"
    policy_changed = "policy.changed"


PATIENT_VISIBLE = frozenset(
    {
        EventType.assessment_submitted,
        EventType.assessment_amended,
        EventType.assessment_retracted,
    }
)
"""What a patient token sees of the feed: its own assessments, nothing clinical staff act on
(alerts, booster signals) and nothing organisation-wide."""


class Event(SQLModel, table=True):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_position", "tx", "seq"),
        Index("ix_events_org_position", "organisation_id", "tx", "seq"),
        Index("ix_events_id", "id", unique=True),
        Index("ix_events_occurred_at", "occurred_at"),  # retention: the oldest first
    )

    seq: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"),
            Identity(),
            primary_key=True,
        ),
    )
    tx: int = Field(default=0, sa_type=BigInteger)
    id: str = Field(max_length=36)
    organisation_id: str = Field(foreign_key="organisations.id", max_length=36)
    type: str = Field(max_length=40)
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    patient_id: str | None = Field(default=None, max_length=36)
    resource_type: str = Field(max_length=24)
    resource_id: str = Field(max_length=36)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)


class EventConsumer(SQLModel, table=True):
    """How far a background consumer of the log (webhook fan-out, signal watch) has read."""

    __tablename__ = "event_consumers"

    name: str = Field(primary_key=True, max_length=40)
    tx: int = Field(default=0, sa_type=BigInteger)
    seq: int = Field(default=0, sa_type=BigInteger)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class ResourceRef(BaseModel):
    type: str
    id: str


class EventPublic(BaseModel):
    """One event: ids, codes and levels only. Never item answers, never ``external_id``:
    a receiver fetches the details with its own credentials."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "id": "0193a5b2-7c4e-7d1a-9f3e-2b8c4d5e6f70",
                "type": "alert.opened",
                "occurred_at": "2026-03-02T15:04:05Z",
                "patient_id": "0193a5b2-1111-7d1a-9f3e-2b8c4d5e6f70",
                "resource": {"type": "alert", "id": "0193a5b2-2222-7d1a-9f3e-2b8c4d5e6f70"},
                "data": {"level": "urgent", "kind": "phq9_item9", "assessment_id": "…"},
            }
        }
    )

    id: str
    type: str
    occurred_at: datetime
    organisation_id: str
    patient_id: str | None
    resource: ResourceRef
    data: dict[str, Any]


class EventPage(BaseModel):
    data: list[EventPublic]
    next_cursor: str
