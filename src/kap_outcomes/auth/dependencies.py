"""FastAPI dependencies: the database, the caller, and what the caller's role may reach."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import Principal, authenticate
from kap_outcomes.db import Database
from kap_outcomes.errors import forbidden, unauthorized

bearer_scheme = HTTPBearer(auto_error=False, description="An API token: `Bearer kap_…`")


async def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    if credentials is None:
        raise unauthorized()
    db: Database = request.app.state.db
    principal = await db.read_small(partial(authenticate, token=credentials.credentials))
    request.state.principal = principal
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
