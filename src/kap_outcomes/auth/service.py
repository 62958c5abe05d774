"""Use cases of authentication: issuing tokens and resolving a bearer token to a principal."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, or_, select

from kap_outcomes.auth.models import ApiToken, Organisation, Role
from kap_outcomes.auth.principal import Principal as Principal
from kap_outcomes.auth.tokens import generate_token, hash_token, looks_like_token, same_hash
from kap_outcomes.db import HotStatement, new_id, utcnow
from kap_outcomes.errors import unauthorized
from kap_outcomes.rows import table_of

_tokens = table_of(ApiToken)
_orgs = table_of(Organisation)


_BY_HASH = HotStatement(
    select(
        _tokens.c.id,
        _tokens.c.organisation_id,
        _tokens.c.role,
        _tokens.c.patient_id,
        _tokens.c.token_hash,
    ).where(
        _tokens.c.token_hash == bindparam("token_hash"),
        _tokens.c.revoked_at.is_(None),
        or_(_tokens.c.expires_at.is_(None), _tokens.c.expires_at > bindparam("now")),
    )
)
"""Every request runs it: compiled once, run on the driver (see HotStatement)."""


def authenticate(conn: Connection, token: str) -> Principal:
    """Resolve a bearer token; unknown, revoked and expired are the same 401 (no oracle)."""
    if not looks_like_token(token):
        raise unauthorized()
    digest = hash_token(token)
    row = _BY_HASH.first(conn, {"token_hash": digest, "now": utcnow()})
    if row is None:
        raise unauthorized()
    token_id, organisation_id, role, patient_id, token_hash = row
    if not same_hash(token_hash, digest):
        raise unauthorized()
    return Principal(
        token_id=token_id,
        organisation_id=organisation_id,
        role=Role(role),
        patient_id=patient_id,
    )


def ensure_organisation(conn: Connection, slug: str) -> str:
    existing = conn.execute(select(_orgs.c.id).where(_orgs.c.slug == slug)).scalar()
    if existing is not None:
        return str(existing)
    org_id = new_id()
    conn.execute(
        insert(_orgs).values(
            id=org_id, slug=slug, created_at=utcnow(), timezone="UTC", settings_version=1
        )
    )
    return org_id


def issue_token(
    conn: Connection,
    *,
    organisation_id: str,
    role: Role,
    label: str | None = None,
    patient_id: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[str, str]:
    """Create a token; returns (token id, secret). The secret is never stored."""
    secret = generate_token()
    token_id = new_id()
    conn.execute(
        insert(_tokens).values(
            id=token_id,
            organisation_id=organisation_id,
            role=role.value,
            label=label,
            token_hash=hash_token(secret),
            patient_id=patient_id,
            created_at=utcnow(),
            expires_at=expires_at,
        )
    )
    return token_id, secret
