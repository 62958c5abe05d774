"""HTTP routes for alerts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query

from kap_outcomes.alerts import service
from kap_outcomes.alerts.models import AlertAction, AlertPublic, AlertStatus
from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.calling import StaffCaller
from kap_outcomes.http import ID_PATTERN, Cursor, Limit, ResourceId, problems
from kap_outcomes.pagination import Page

router = APIRouter(prefix="/v1/alerts", tags=["alerts"], route_class=AuditedRoute)


@router.get("")
async def list_alerts(
    staff: StaffCaller,
    status: AlertStatus | None = None,
    patient_id: Annotated[str | None, Query(max_length=36, pattern=ID_PATTERN)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[AlertPublic]:
    return await staff.read(
        service.list_alerts, status=status, patient_id=patient_id, cursor=cursor, limit=limit
    )


_CONFLICT = problems((409, "The alert is not in a state that allows this"))
OptionalAction = Annotated[AlertAction | None, Body()]


@router.post("/{alert_id}/acknowledge", responses=_CONFLICT)
async def acknowledge_alert(
    alert_id: ResourceId, staff: StaffCaller, data: OptionalAction = None
) -> AlertPublic:
    """Record who acknowledged an open alert, when, and an optional note."""
    return await staff.write(service.acknowledge, alert_id=alert_id, data=data or AlertAction())


@router.post("/{alert_id}/resolve", responses=_CONFLICT)
async def resolve_alert(
    alert_id: ResourceId, staff: StaffCaller, data: OptionalAction = None
) -> AlertPublic:
    """Resolve an alert; an open one is acknowledged and resolved at once."""
    return await staff.write(service.resolve, alert_id=alert_id, data=data or AlertAction())
