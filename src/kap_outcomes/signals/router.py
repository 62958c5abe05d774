"""HTTP routes for trends and signals."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter

from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.auth.dependencies import DbDep, PrincipalDep
from kap_outcomes.http import ResourceId
from kap_outcomes.signals import service
from kap_outcomes.signals.models import SignalsPublic, TrendInstrument, TrendPublic

router = APIRouter(prefix="/v1", tags=["signals"], route_class=AuditedRoute)


@router.get("/patients/{patient_id}/trends")
async def get_trend(
    patient_id: ResourceId, instrument: TrendInstrument, principal: PrincipalDep, db: DbDep
) -> TrendPublic:
    """Baseline, latest, change (section 3) and trend (section 4) of one instrument."""
    return await db.read(
        partial(
            service.get_trend, principal=principal, patient_id=patient_id, instrument=instrument
        )
    )


@router.get("/patients/{patient_id}/signals")
async def get_signals(patient_id: ResourceId, principal: PrincipalDep, db: DbDep) -> SignalsPublic:
    """Booster-need status with its reasons (section 5), safety and measurement cadence."""
    return await db.read(partial(service.get_signals, principal=principal, patient_id=patient_id))
