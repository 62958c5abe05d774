"""FastAPI dependencies: the database, the caller, and what the caller's role may reach."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import Depends, Request

from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import Principal, authenticate
from kap_outcomes.db import Database
from kap_outcomes.errors import forbidden, unauthorized

BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API token: `Authorization: Bearer kap_…`",
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
    db: Database = request.app.state.db
    principal = await db.read_small(partial(authenticate, token=token.strip()))
    return principal


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
