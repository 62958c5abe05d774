"""``GET /v1/patients/{patient_id}/charts/{instrument}.svg``: the chart for EHRs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.calling import AnyCaller
from kap_outcomes.charts import service, svg
from kap_outcomes.http import ResourceId
from kap_outcomes.signals.models import TrendInstrument

router = APIRouter(prefix="/v1", tags=["signals"], route_class=AuditedRoute)

SVG_MEDIA_TYPE = "image/svg+xml"
_SVG_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A standalone SVG document: no script, no external font or link.",
        "content": {SVG_MEDIA_TYPE: {"schema": {"type": "string"}}},
    }
}


@router.get(
    "/patients/{patient_id}/charts/{instrument}.svg",
    response_class=Response,
    responses=_SVG_RESPONSE,
)
async def get_chart(
    patient_id: ResourceId,
    instrument: TrendInstrument,
    caller: AnyCaller,
    width: Annotated[int, Query(ge=240, le=2000, description="Pixels")] = 720,
    height: Annotated[int, Query(ge=160, le=1200, description="Pixels")] = 320,
) -> Response:
    """The PHQ-9 or GAD-7 chart of the dashboard's patient page, for an EHR to show beside its
    notes: severity bands, baseline, the MCID threshold, dosing and booster sessions, the trend
    line and every valid score, drawn from the same numbers as `GET …/trends`."""
    spec = await caller.read(service.chart_spec, patient_id=patient_id, instrument=instrument)
    body = '<?xml version="1.0" encoding="UTF-8"?>\n' + svg.render(spec, width=width, height=height)
    return Response(body, media_type=SVG_MEDIA_TYPE)
