"""HTTP routes for alerts."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query

from kap_outcomes.alerts import service
from kap_outcomes.alerts.models import AlertPublic, AlertStatus
from kap_outcomes.auth.dependencies import DbDep, StaffDep
from kap_outcomes.http import ID_PATTERN, PROBLEMS
from kap_outcomes.pagination import Cursor, Limit, Page

router = APIRouter(prefix="/v1/alerts", tags=["alerts"], responses=PROBLEMS)


@router.get("")
async def list_alerts(
    principal: StaffDep,
    db: DbDep,
    status: AlertStatus | None = None,
    patient_id: Annotated[str | None, Query(max_length=36, pattern=ID_PATTERN)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[AlertPublic]:
    return await db.read(
        partial(
            service.list_alerts,
            principal=principal,
            status=status,
            patient_id=patient_id,
            cursor=cursor,
            limit=limit,
        )
    )
