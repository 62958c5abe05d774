"""HTTP routes for trends and signals."""

from __future__ import annotations

from fastapi import APIRouter

from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.calling import AnyCaller
from kap_outcomes.http import ResourceId
from kap_outcomes.signals import service
from kap_outcomes.signals.models import SignalsPublic, TrendInstrument, TrendPublic

router = APIRouter(prefix="/v1", tags=["signals"], route_class=AuditedRoute)


@router.get("/patients/{patient_id}/trends")
async def get_trend(
    patient_id: ResourceId, instrument: TrendInstrument, caller: AnyCaller
) -> TrendPublic:
    """Baseline, latest, change (section 3) and trend (section 4) of one instrument."""
    return await caller.read(service.get_trend, patient_id=patient_id, instrument=instrument)


@router.get("/patients/{patient_id}/signals")
async def get_signals(patient_id: ResourceId, caller: AnyCaller) -> SignalsPublic:
    """Booster-need status with its reasons (section 5), safety and measurement cadence."""
    return await caller.read(service.get_signals, patient_id=patient_id)
