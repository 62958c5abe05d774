"""HTTP route of the audit trail (admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kap_outcomes.audit import service
from kap_outcomes.audit.models import AuditEventPublic
from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.calling import AdminCaller
from kap_outcomes.http import ID_PATTERN, Cursor, Limit
from kap_outcomes.pagination import Page
from kap_outcomes.timing import Timestamp

router = APIRouter(prefix="/v1/audit-events", tags=["audit"], route_class=AuditedRoute)


@router.get("")
async def list_audit_events(
    admin: AdminCaller,
    patient_id: Annotated[str | None, Query(max_length=36, pattern=ID_PATTERN)] = None,
    actor: Annotated[str | None, Query(max_length=36, pattern=ID_PATTERN)] = None,
    since: Annotated[Timestamp | None, Query()] = None,
    until: Annotated[Timestamp | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[AuditEventPublic]:
    """Who read or changed what, newest first (reading this list is audited too)."""
    return await admin.read(
        service.list_events,
        patient_id=patient_id,
        actor=actor,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )
