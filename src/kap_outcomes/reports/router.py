"""HTTP routes of the clinic reports (staff only; one audit event per request)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse, Response

from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.calling import StaffCaller
from kap_outcomes.reports import service
from kap_outcomes.reports.models import Cms159Report, GroupBy, OutcomesReport, ReportInstrument

router = APIRouter(prefix="/v1/reports", tags=["reports"], route_class=AuditedRoute)

CSV = "text/csv"
_CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {CSV: {"schema": {"type": "string"}}}}
}


def wants_csv(accept: str | None) -> bool:
    """True when the Accept header prefers text/csv to JSON (by q-value; JSON on a tie)."""
    if not accept:
        return False
    best: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        best[media] = max(q, best.get(media, 0.0))
    csv_q = best.get(CSV, 0.0)
    json_q = max(best.get("application/json", 0.0), best.get("*/*", 0.0))
    return csv_q > 0 and csv_q > json_q


@router.get(
    "/outcomes",
    response_model=OutcomesReport,
    responses=_CSV_RESPONSE,
)
async def get_outcomes(
    staff: StaffCaller,
    period_from: Annotated[date, Query(alias="from", description="First dose on or after.")],
    period_to: Annotated[date, Query(alias="to", description="First dose on or before.")],
    instrument: ReportInstrument = ReportInstrument.phq9,
    group_by: GroupBy = GroupBy.none,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Cohort outcomes of the courses whose first dose falls in [from, to] (clinical-rules
    section 7). `Accept: text/csv` gives the same report as CSV."""
    report = await staff.read(
        service.outcomes_report,
        instrument=instrument,
        period_from=period_from,
        period_to=period_to,
        group_by=group_by,
    )
    if wants_csv(accept):
        return Response(service.outcomes_csv(report), media_type="text/csv; charset=utf-8")
    return JSONResponse(report.model_dump(mode="json"))


@router.get("/cms159")
async def get_cms159(staff: StaffCaller, period_start: date, period_end: date) -> Cms159Report:
    """CMS159 Depression Remission at Twelve Months for the measurement period."""
    return await staff.read(service.cms159_report, period_start=period_start, period_end=period_end)
