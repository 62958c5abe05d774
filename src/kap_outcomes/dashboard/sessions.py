"""Signing in to the dashboard: one-time links, staff tokens, sessions, CSRF tokens.

- A **sign-in link** (``kap-outcomes signin-link``) carries a one-time code: 160 random bits,
  only its SHA-256 stored, single use, valid ``KAP_SIGNIN_LINK_MINUTES`` (10). The URL holds
  the code and nothing else (no organisation, no person, no patient).
- A **staff token** (admin or clinician) may be pasted into the sign-in form instead.
- Either is exchanged for a **session**: a random secret in an HttpOnly, SameSite=Strict
  cookie, only its SHA-256 stored, ending ``KAP_DASHBOARD_SESSION_MINUTES`` (720) after
  sign-in, at sign-out, or when the token it was made from is revoked.
- The **CSRF token** of a session is an HMAC of a fixed label keyed by the session secret
  (a synchronizer token that needs no storage): a page of the dashboard has it, a page of
  another site cannot compute it, and it dies with the session.

Patient and integration tokens never open the dashboard: it is for people of the clinic.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from kap_outcomes.audit import service as audit
from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import Principal, authenticate, ensure_organisation
from kap_outcomes.dashboard import repository
from kap_outcomes.db import new_id, utcnow
from kap_outcomes.errors import DomainError

DASHBOARD_ROLES = frozenset({Role.admin, Role.clinician})
COOKIE_NAME = "kap_dashboard"
_CSRF_LABEL = b"kap-dashboard-csrf-v1"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def signin_refused() -> DomainError:
    """Unknown, used, expired, revoked or a role that may not: one answer, no oracle."""
    return DomainError(
        detail="This sign-in link or token is not valid (unknown, used, expired or revoked), "
        "or its role may not use the dashboard.",
        status=401,
        slug="signin-refused",
        title="Sign-in refused",
    )


def create_signin_code(
    conn: Connection, *, organisation_slug: str, role: Role, ttl: timedelta
) -> str:
    """A new one-time code for the organisation (created if new); returned once."""
    if role not in DASHBOARD_ROLES:
        raise ValueError("sign-in links are for clinicians and admins")
    organisation_id = ensure_organisation(conn, organisation_slug)
    code = secrets.token_urlsafe(20)
    now = utcnow()
    repository.insert_code(
        conn,
        {
            "id": new_id(),
            "organisation_id": organisation_id,
            "role": role.value,
            "code_hash": _hash(code),
            "created_at": now,
            "expires_at": now + ttl,
            "used_at": None,
        },
    )
    return code


@dataclass(frozen=True, slots=True)
class NewSession:
    secret: str
    principal: Principal
    expires_at: datetime


def _start(
    conn: Connection,
    *,
    organisation_id: str,
    role: Role,
    actor: str,
    token_id: str | None,
    ttl: timedelta,
) -> NewSession:
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    repository.insert_session(
        conn,
        {
            "id_hash": _hash(secret),
            "organisation_id": organisation_id,
            "role": role.value,
            "actor": actor,
            "token_id": token_id,
            "created_at": now,
            "expires_at": now + ttl,
            "revoked_at": None,
        },
    )
    principal = Principal(
        token_id=actor, organisation_id=organisation_id, role=role, patient_id=None
    )
    audit.acting_as(principal)
    return NewSession(secret=secret, principal=principal, expires_at=now + ttl)


def signin_with_code(conn: Connection, *, code: str, ttl: timedelta) -> NewSession:
    if not code or len(code) > 64:
        raise signin_refused()
    row = repository.redeem_code(conn, code_hash=_hash(code), at=utcnow())
    if row is None:
        raise signin_refused()
    return _start(
        conn,
        organisation_id=row.organisation_id,
        role=Role(row.role),
        actor=row.id,
        token_id=None,
        ttl=ttl,
    )


def signin_with_token(conn: Connection, *, token: str, ttl: timedelta) -> NewSession:
    try:
        principal = authenticate(conn, token.strip())
    except DomainError:
        raise signin_refused() from None
    if principal.role not in DASHBOARD_ROLES:
        raise signin_refused()
    return _start(
        conn,
        organisation_id=principal.organisation_id,
        role=principal.role,
        actor=principal.token_id,
        token_id=principal.token_id,
        ttl=ttl,
    )


def session_principal(conn: Connection, *, secret: str) -> Principal | None:
    """The staff member behind a session cookie, or None (expired, signed out, revoked)."""
    if not secret or len(secret) > 128:
        return None
    row = repository.live_session(conn, id_hash=_hash(secret), at=utcnow())
    if row is None:
        return None
    return Principal(
        token_id=row.actor,
        organisation_id=row.organisation_id,
        role=Role(row.role),
        patient_id=None,
    )


def signout(conn: Connection, *, secret: str) -> None:
    repository.revoke_session(conn, id_hash=_hash(secret), at=utcnow())


def csrf_token(secret: str) -> str:
    return hmac.new(secret.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()


def csrf_ok(secret: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(csrf_token(secret), str(sent))
