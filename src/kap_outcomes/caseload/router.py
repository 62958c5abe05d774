"""HTTP route of the caseload."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.auth.dependencies import DbDep, StaffDep
from kap_outcomes.caseload import service
from kap_outcomes.caseload.models import CaseloadPage
from kap_outcomes.http import Cursor, Limit
from kap_outcomes.signals.models import BoosterStatus

router = APIRouter(prefix="/v1", tags=["caseload"], route_class=AuditedRoute)


@router.get("/caseload")
async def get_caseload(
    principal: StaffDep,
    db: DbDep,
    booster_status: BoosterStatus | None = None,
    alert: Literal["open"] | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> CaseloadPage:
    """One row per patient: unresolved alerts first (emergency, urgent, review), then
    consider_booster, then watch, then the rest; ties by patient id.

    The rows are what is stored: after a policy change or a burst of writes some may be behind
    for a few seconds while the worker recomputes them. `stale_count` says how many, and
    `as_of` the time before which every write is reflected."""
    query = service.CaseloadQuery(
        booster_status=booster_status,
        open_alerts_only=alert == "open",
        cursor=cursor,
        limit=limit,
    )
    return await service.caseload(db, principal=principal, query=query)
