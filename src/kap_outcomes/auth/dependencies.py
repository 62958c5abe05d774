"""FastAPI dependencies: the database, the caller, and what the caller's role may reach."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import Depends, Request

from kap_outcomes.audit.service import CURRENT as CURRENT_AUDIT
from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import Principal, authenticate
from kap_outcomes.auth.tokens import TOKEN_PREFIX
from kap_outcomes.db import Database
from kap_outcomes.errors import forbidden, too_many_requests, unauthorized
from kap_outcomes.limiter import Budget
from kap_outcomes.smart import access as smart_access
from kap_outcomes.smart import repository as smart_clients
from kap_outcomes.smart.tokens import TokenIssuer

BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": (
        "An API token (`Authorization: Bearer kap_…`), or an access token from "
        "`POST /oauth/token` (SMART Backend Services, a JWT)."
    ),
}
"""Declared in the OpenAPI document by app.py for every route that needs a principal.

The header is read here directly rather than through ``fastapi.security.HTTPBearer``: that
is one dependency fewer on every request, which the ingest benchmark shows.
"""


async def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def current_principal(request: Request) -> Principal:
    """The caller of a protected route, from its ``Authorization: Bearer`` header."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise unauthorized()
    token = token.strip()
    granted: str | None = None  # the scopes of a SMART access token
    if not token.startswith(TOKEN_PREFIX) and token.count(".") == 2:
        principal, granted = await _access_token_principal(request, token)
    else:
        db: Database = request.app.state.db
        principal = await db.read_small(partial(authenticate, token=token))
    request.state.principal = principal
    audit = CURRENT_AUDIT.get()
    if audit is not None:
        audit.principal = principal
    if granted is not None:  # once the audit knows the caller, so a refusal is recorded with it
        route = request.scope.get("route")
        smart_access.check(
            request.method,
            getattr(route, "path_format", None),
            granted,
            {k: request.query_params.getlist(k) for k in ("_include", "_type")},
            request.path_params,
        )
    limiter: Budget | None = request.app.state.token_rate
    if limiter is not None:
        # per principal, after authentication: a forged token cannot use up someone's quota,
        # and a SMART client's fresh access tokens share the client's one
        wait = await limiter.take(principal.token_id)
        if wait:
            raise too_many_requests(wait, "This token's request rate is over its limit.")
    return principal


async def _access_token_principal(request: Request, token: str) -> tuple[Principal, str]:
    """The integration behind a SMART access token (a JWT of ours, see ``smart.tokens``).

    Signature, issuer and expiry are checked without the database; then one lookup by primary
    key confirms that the client is still registered, so revoking a client stops its tokens
    from the next request on. The principal's ``token_id`` is the client id: what it records
    and its Idempotency-Keys belong to the client. The caller then checks that the token's
    scopes reach the route (``smart.access``): else a 403 ``insufficient_scope``.
    """
    issuer: TokenIssuer = request.app.state.token_issuer
    claims = issuer.verify(token)
    if claims is None:
        raise unauthorized()
    db: Database = request.app.state.db
    organisation_id = await db.read_small(
        partial(smart_clients.active_client_organisation, client_id=claims.client_id)
    )
    if organisation_id is None or organisation_id != claims.organisation_id:
        raise unauthorized()
    principal = Principal(
        token_id=claims.client_id,
        organisation_id=claims.organisation_id,
        role=Role.integration,
        patient_id=None,
    )
    return principal, claims.scope


STAFF_ROLES = frozenset({Role.admin, Role.clinician, Role.integration})


async def staff_principal(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    """Admins, clinicians and integrations: organisation-wide data rights."""
    if principal.role not in STAFF_ROLES:
        raise forbidden()
    return principal


async def admin_principal(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    """Admins only: tokens, policy, the audit log."""
    if principal.role is not Role.admin:
        raise forbidden()
    return principal


DbDep = Annotated[Database, Depends(get_db)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]
StaffDep = Annotated[Principal, Depends(staff_principal)]
AdminDep = Annotated[Principal, Depends(admin_principal)]
