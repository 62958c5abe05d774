"""The record of a create made under an Idempotency-Key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel, UniqueConstraint

from kap_outcomes.db import UTCDateTime, new_id, utcnow


class IdempotencyRecord(SQLModel, table=True):
    """One key of one token (its client): the request's fingerprint and the response sent.

    The unique constraint is what makes concurrent duplicates safe: the second insert of a key
    waits for, then fails against, the first (no check-then-insert race).
    """

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("token_id", "key"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    organisation_id: str = Field(foreign_key="organisations.id", max_length=36)
    token_id: str = Field(foreign_key="api_tokens.id", max_length=36)
    key: str = Field(max_length=255)
    fingerprint: str = Field(max_length=64)
    status_code: int | None = None
    response_body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
