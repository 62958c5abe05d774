"""Sign-in links and browser sessions of the dashboard (secrets stored only as hashes)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlmodel import Field, SQLModel

from kap_outcomes.db import UTCDateTime, utcnow


class SigninCode(SQLModel, table=True):
    """A one-time sign-in link's code (``kap-outcomes signin-link``): single use, short-lived."""

    __tablename__ = "dashboard_signin_codes"

    id: str = Field(primary_key=True, max_length=36)
    organisation_id: str = Field(foreign_key="organisations.id", max_length=36)
    role: str = Field(sa_type=String(16))
    code_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class DashboardSession(SQLModel, table=True):
    """A signed-in browser. The cookie holds the secret; the row its SHA-256 (``id_hash``).

    ``actor`` is what the audit log and alert stamps name: the staff token's id when signed in
    with a token, the sign-in link's id otherwise. A session signed in with a token ends with
    that token (``token_id``): revoking the token signs its browsers out.
    """

    __tablename__ = "dashboard_sessions"

    id_hash: str = Field(primary_key=True, max_length=64)
    organisation_id: str = Field(foreign_key="organisations.id", index=True, max_length=36)
    role: str = Field(sa_type=String(16))
    actor: str = Field(max_length=36)
    token_id: str | None = Field(default=None, foreign_key="api_tokens.id", max_length=36)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
