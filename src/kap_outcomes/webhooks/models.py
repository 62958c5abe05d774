"""Webhook endpoints, deliveries (one per endpoint and event) and every attempt of each."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints
from pydantic import Field as Bounds
from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from kap_outcomes.db import JSONType, UTCDateTime
from kap_outcomes.events.models import EventType
from kap_outcomes.patterns import FREE_TEXT_PATTERN


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_org_created", "organisation_id", "created_at"),)

    id: str = Field(primary_key=True, max_length=36)
    organisation_id: str = Field(foreign_key="organisations.id", max_length=36)
    url: str = Field(max_length=2048)
    event_types: list[str] = Field(sa_type=JSONType)
    description: str | None = Field(default=None, max_length=500)
    secret: str = Field(max_length=100)
    """The signing key itself: an HMAC needs it (unlike a token, it cannot be kept hashed)."""
    previous_secret: str | None = Field(default=None, max_length=100)
    previous_secret_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    enabled: bool = True
    disabled_reason: str | None = Field(default=None, max_length=500)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    consecutive_failures: int = 0
    last_error: str | None = Field(default=None, max_length=300)
    last_success_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_failure_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    version: int = 1
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    created_by: str = Field(max_length=36)


class WebhookDelivery(SQLModel, table=True):
    """The job of bringing one event to one endpoint; leased by one worker at a time."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at", "id"),
        Index("ix_webhook_deliveries_event", "event_id"),  # retention: an event's deliveries
    )

    id: str = Field(primary_key=True, max_length=36)
    organisation_id: str = Field(foreign_key="organisations.id", max_length=36)
    endpoint_id: str = Field(foreign_key="webhook_endpoints.id", max_length=36)
    event_id: str = Field(max_length=36)
    event_type: str = Field(max_length=40)
    status: str = Field(max_length=16)
    attempts: int = 0
    retry_step: int = 0
    next_attempt_at: datetime = Field(sa_type=UTCDateTime)
    lease_owner: str | None = Field(default=None, max_length=36)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=300)
    created_at: datetime = Field(sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebhookAttempt(SQLModel, table=True):
    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "attempt"),)

    id: str = Field(primary_key=True, max_length=36)
    delivery_id: str = Field(foreign_key="webhook_deliveries.id", max_length=36)
    attempt: int
    at: datetime = Field(sa_type=UTCDateTime)
    duration_ms: int
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=300)
    succeeded: bool


# --- API shapes ---------------------------------------------------------------------------

Url = Annotated[str, StringConstraints(min_length=8, max_length=2048, strip_whitespace=True)]
Description = Annotated[str, StringConstraints(max_length=500, pattern=FREE_TEXT_PATTERN)]
EventTypes = Annotated[list[EventType], Bounds(min_length=1, max_length=len(EventType))]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    event_types: EventTypes
    description: Description | None = None


class WebhookUpdate(BaseModel):
    """Fields to change; ``enabled: true`` turns a disabled endpoint back on."""

    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    enabled: bool | None = None


class WebhookPublic(BaseModel):
    id: str
    url: str
    event_types: list[EventType]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    consecutive_failures: int
    last_error: str | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookWithSecret(WebhookPublic):
    secret: str
    """`whsec_…`: shown once, when created or rotated. Verify deliveries with it."""


class AttemptPublic(BaseModel):
    attempt: int
    at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    succeeded: bool


class DeliveryPublic(BaseModel):
    id: str
    event_id: str
    event_type: str
    status: Literal["pending", "succeeded", "failed"]
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    completed_at: datetime | None
    attempts: list[AttemptPublic]
