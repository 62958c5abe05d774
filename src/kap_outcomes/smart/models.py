"""Registered SMART backend clients, the assertion ids they have used, and the API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydField
from sqlalchemy import Column, ForeignKey, String, Text
from sqlmodel import Field, SQLModel

from kap_outcomes.db import JSONType, UTCDateTime, utcnow
from kap_outcomes.patterns import FREE_TEXT_PATTERN


class SmartClient(SQLModel, table=True):
    """One EHR backend of one organisation: its public keys and the scopes it may ask for.

    ``id`` is the ``client_id`` and also the id of an ``api_tokens`` row that is revoked from
    birth (no secret can ever match it): it anchors what the client does under the same
    identity as a token (``recorded_by``, Idempotency-Key scoping and its foreign key).
    """

    __tablename__ = "smart_clients"

    id: str = Field(
        sa_column=Column(String(36), ForeignKey("api_tokens.id"), primary_key=True),
    )
    organisation_id: str = Field(foreign_key="organisations.id", index=True, max_length=36)
    name: str = Field(max_length=200)
    jwks: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    """The public keys, when registered inline; else None and ``jwks_uri`` names them."""
    jwks_uri: str | None = Field(default=None, max_length=2000)
    scope: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SmartJti(SQLModel, table=True):
    """An assertion id already used by a client, kept until the assertion has expired.

    The primary key makes a replay fail on insert, also between concurrent requests.
    """

    __tablename__ = "smart_jtis"

    client_id: str = Field(
        sa_column=Column(String(36), ForeignKey("smart_clients.id"), primary_key=True),
    )
    jti: str = Field(primary_key=True, max_length=255)
    expires_at: datetime = Field(sa_type=UTCDateTime)


class Jwks(BaseModel):
    """A JSON Web Key Set (RFC 7517) of public keys: RSA (2048 bits or more) or EC P-384."""

    keys: list[dict[str, Any]] = PydField(min_length=1, max_length=10)


_SCOPE_DESCRIPTION = (
    "Space-separated SMART system scopes, v2 (`system/Patient.rs`) or v1 "
    "(`system/Observation.read`, `system/*.write`)."
)
_JWKS_URI_DESCRIPTION = (
    "An https (or http) URL serving the client's JWK Set; fetched when a token is asked for, "
    "cached as its Cache-Control says (within bounds) and fetched again for an unknown kid."
)


class ClientCreate(BaseModel):
    """A backend's registration: its keys (`jwks`, or `jwks_uri`: exactly one) and scopes."""

    model_config = ConfigDict(extra="forbid")

    name: str = PydField(min_length=1, max_length=200, pattern=FREE_TEXT_PATTERN)
    jwks: Jwks | None = None
    jwks_uri: str | None = PydField(
        default=None, min_length=1, max_length=2000, description=_JWKS_URI_DESCRIPTION
    )
    scope: str = PydField(
        min_length=1,
        max_length=2000,
        description=_SCOPE_DESCRIPTION,
        examples=["system/Patient.rs system/Observation.rs system/QuestionnaireResponse.cruds"],
    )


class ClientUpdate(BaseModel):
    """What changes (at least one member). Giving `jwks` replaces the whole key set (and
    drops a `jwks_uri`); giving `jwks_uri` drops the inline keys. To rotate an inline key
    without downtime add the new key first (`POST /v1/clients/{id}/keys`), move the backend
    to it, then remove the old one."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = PydField(
        default=None, min_length=1, max_length=200, pattern=FREE_TEXT_PATTERN
    )
    jwks: Jwks | None = None
    jwks_uri: str | None = PydField(
        default=None, min_length=1, max_length=2000, description=_JWKS_URI_DESCRIPTION
    )
    scope: str | None = PydField(
        default=None, min_length=1, max_length=2000, description=_SCOPE_DESCRIPTION
    )


class PublicKey(BaseModel):
    """One public JWK (RFC 7517): RSA of 2048 bits or more, or EC P-384, with its own kid."""

    model_config = ConfigDict(extra="allow")

    kty: str = PydField(max_length=8, examples=["EC"])
    kid: str = PydField(min_length=1, max_length=255)


class ClientPublic(BaseModel):
    client_id: str
    name: str
    scope: str
    jwks_uri: str | None = PydField(description="Where the keys are fetched from, if by URL")
    key_ids: list[str] = PydField(
        description="The kids of the inline keys (empty for a client registered by jwks_uri)"
    )
    active: bool = PydField(description="False once the client is revoked (DELETE)")
    created_at: datetime
    updated_at: datetime | None
    revoked_at: datetime | None


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = PydField(examples=["bearer"])
    expires_in: int = PydField(le=300)
    scope: str


class OAuthErrorBody(BaseModel):
    """RFC 6749 §5.2."""

    error: str = PydField(
        examples=[
            "invalid_request",
            "invalid_client",
            "invalid_grant",
            "invalid_scope",
            "unsupported_grant_type",
        ]
    )
    error_description: str


class SmartConfiguration(BaseModel):
    """SMART App Launch 2.0 discovery (the backend-services subset)."""

    token_endpoint: str
    token_endpoint_auth_methods_supported: list[str]
    token_endpoint_auth_signing_alg_values_supported: list[str]
    grant_types_supported: list[str]
    scopes_supported: list[str]
    capabilities: list[str]
