"""A patient's chart: the trend the API serves, the doses of the course, the clinic's calendar.

The numbers come from the same use case as ``GET /v1/patients/{id}/trends``
(:func:`signals.service.get_trend`): the chart never scores or labels anything itself. It
only adds where to draw the trend line: the Theil–Sen line over the trend window, through
the median of ``score − slope × day`` (the estimator's usual intercept, Sen 1968).
"""

from __future__ import annotations

import statistics
from datetime import datetime

from sqlalchemy import Connection

from kap_outcomes.auth.service import Principal
from kap_outcomes.care import repository as care_repository
from kap_outcomes.charts.svg import Band, ChartSpec, Marker, Point, TrendSegment
from kap_outcomes.clinical.instruments import Instrument
from kap_outcomes.clinical.points import ScorePoint
from kap_outcomes.clinical.policy import Policy
from kap_outcomes.clinical.scoring import severity_bands
from kap_outcomes.clinical.trend import trend_window
from kap_outcomes.organisation import service as organisation_service
from kap_outcomes.policy import service as policy_service
from kap_outcomes.signals import service as signals_service
from kap_outcomes.signals.models import TrendInstrument, TrendPublic

NAMES = {"phq9": "PHQ-9", "gad7": "GAD-7"}
MAX_SCORE = {"phq9": 27, "gad7": 21}


def chart_spec(
    conn: Connection, *, principal: Principal, patient_id: str, instrument: TrendInstrument
) -> ChartSpec:
    """Everything the chart shows, from the trend use case (which checks access and audits)."""
    return chart_and_trend(conn, principal=principal, patient_id=patient_id, instrument=instrument)[
        0
    ]


def chart_and_trend(
    conn: Connection, *, principal: Principal, patient_id: str, instrument: TrendInstrument
) -> tuple[ChartSpec, TrendPublic]:
    """The chart and the trend it was drawn from (the patient page shows both)."""
    trend = signals_service.get_trend(
        conn, principal=principal, patient_id=patient_id, instrument=instrument
    )
    _, policy = policy_service.current_policy(conn, organisation_id=principal.organisation_id)
    zone = organisation_service.clinic_zone(conn, organisation_id=principal.organisation_id)
    doses = care_repository.dose_sessions(conn, patient_id=patient_id)
    spec = spec_from_trend(
        trend, doses=[(row.occurred_at, row.kind) for row in doses], policy=policy, zone=zone
    )
    return spec, trend


def spec_from_trend(
    trend: TrendPublic,
    *,
    doses: list[tuple[datetime, str]],
    policy: Policy,
    zone: object,
) -> ChartSpec:
    name = trend.instrument.value
    bands = [
        Band(low, high, severity.value) for low, high, severity in severity_bands(Instrument(name))
    ]
    points = [
        Point(
            at=p.administered_at, total=p.total, severity=p.severity, assessment_id=p.assessment_id
        )
        for p in trend.points
    ]
    return ChartSpec(
        instrument=name,
        name=NAMES[name],
        max_score=MAX_SCORE[name],
        bands=bands,
        points=points,
        markers=[Marker(at=at, kind=kind) for at, kind in sorted(doses)],
        baseline=trend.baseline.total if trend.baseline is not None else None,
        mcid=policy.thresholds_for(trend.instrument.value).mcid,
        trend=_segment(trend, policy),
        trend_label=trend.trend.label,
        zone=zone,  # type: ignore[arg-type]
    )


def _segment(trend: TrendPublic, policy: Policy) -> TrendSegment | None:
    slope_per_week = trend.trend.slope_per_week
    if slope_per_week is None:
        return None
    window = trend_window(
        [ScorePoint(p.assessment_id, p.administered_at, p.total) for p in trend.points], policy
    )
    start, end = window[0].administered_at, window[-1].administered_at
    per_day = slope_per_week / 7

    def day(at: datetime) -> float:
        return (at - start).total_seconds() / 86_400

    intercept = statistics.median(p.total - per_day * day(p.administered_at) for p in window)
    return TrendSegment(
        start=start,
        end=end,
        start_value=intercept,
        end_value=intercept + per_day * day(end),
        slope_per_week=slope_per_week,
        label=trend.trend.label,
    )
