"""What each dashboard page shows, assembled from the same use cases as the JSON API.

No SQL here: the patient, its signals, trends, assessments, sessions and alerts come from the
services the routers of ``/v1`` call, with the same principal, so the same role rules and the
same audit apply. Dates are shown in the clinic's time zone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any, TypeVar

from sqlalchemy import Connection

from kap_outcomes.alerts import service as alerts_service
from kap_outcomes.alerts.models import AlertPublic, AlertStatus
from kap_outcomes.assessments import corrections as assessment_corrections
from kap_outcomes.assessments import service as assessments_service
from kap_outcomes.assessments.models import AssessmentPublic, AssessmentVersion
from kap_outcomes.auth.service import Principal
from kap_outcomes.care import service as care_service
from kap_outcomes.care.models import SessionPublic
from kap_outcomes.caseload import repository as caseload_repository
from kap_outcomes.charts import service as charts_service
from kap_outcomes.charts.svg import ChartSpec
from kap_outcomes.clinical.safety import ALERT_LEVEL_RANK
from kap_outcomes.organisation import service as organisation_service
from kap_outcomes.pagination import Page
from kap_outcomes.patients import service as patients_service
from kap_outcomes.patients.models import PatientPublic
from kap_outcomes.signals import service as signals_service
from kap_outcomes.signals.models import SignalsPublic, TrendInstrument, TrendPublic

T = TypeVar("T")

MAX_LISTED = 500
"""The most assessments, sessions or alerts a page lists (the API's largest page)."""


@dataclass
class ChartView:
    spec: ChartSpec
    trend: TrendPublic


@dataclass
class PatientView:
    patient: PatientPublic
    signals: SignalsPublic
    charts: list[ChartView]
    assessments: list[AssessmentPublic]
    cssrs: list[AssessmentPublic]
    sessions: list[SessionPublic]
    alerts: list[AlertPublic]
    zone: tzinfo
    histories: dict[str, list[AssessmentVersion]] = field(default_factory=dict)
    """Every version of each assessment corrected at least once (amended or retracted)."""


@dataclass
class AlertRow:
    alert: AlertPublic
    external_id: str


@dataclass
class InboxView:
    open: list[AlertRow] = field(default_factory=list)
    acknowledged: list[AlertRow] = field(default_factory=list)
    zone: Any = None


def _listed(
    use_case: Callable[..., Page[T]],
    conn: Connection,
    *,
    principal: Principal,
    patient_id: str | None,
    **filters: Any,
) -> list[T]:
    """What one of the API's listing use cases lists, as its first (largest) page."""
    return use_case(
        conn, principal=principal, patient_id=patient_id, cursor=None, limit=MAX_LISTED, **filters
    ).data


def clinic_zone(conn: Connection, *, principal: Principal) -> tzinfo:
    return organisation_service.clinic_zone(conn, organisation_id=principal.organisation_id)


def patient_page(conn: Connection, *, principal: Principal, patient_id: str) -> PatientView:
    patient = patients_service.get_patient(conn, principal=principal, patient_id=patient_id)
    signals = signals_service.get_signals(conn, principal=principal, patient_id=patient_id)
    charts = []
    for instrument in (TrendInstrument.phq9, TrendInstrument.gad7):
        spec, trend = charts_service.chart_and_trend(
            conn, principal=principal, patient_id=patient_id, instrument=instrument
        )
        charts.append(ChartView(spec=spec, trend=trend))
    assessments = _listed(
        assessments_service.list_assessments,
        conn,
        principal=principal,
        patient_id=patient_id,
        instrument=None,
        since=None,
        until=None,
    )
    sessions = _listed(care_service.list_sessions, conn, principal=principal, patient_id=patient_id)
    alerts = _listed(
        alerts_service.list_alerts, conn, principal=principal, patient_id=patient_id, status=None
    )
    histories = assessment_corrections.patient_histories(
        conn,
        principal=principal,
        patient_id=patient_id,
        assessment_ids=[a.id for a in assessments if a.version > 1],
    )
    return PatientView(
        histories=histories,
        patient=patient,
        signals=signals,
        charts=charts,
        assessments=assessments,
        cssrs=[a for a in assessments if a.instrument.value == "cssrs"],
        sessions=sessions,
        alerts=sorted(alerts, key=alert_order),
        zone=clinic_zone(conn, principal=principal),
    )


def alert_order(alert: AlertPublic) -> tuple[int, int, float]:
    """Unresolved before resolved, most severe first, newest first."""
    return (
        int(alert.status == AlertStatus.resolved),
        -ALERT_LEVEL_RANK[alert.level],
        -alert.created_at.timestamp(),
    )


def inbox(conn: Connection, *, principal: Principal) -> InboxView:
    """Open alerts (nobody has acknowledged them), then acknowledged ones not yet resolved;
    each most severe first, then newest first."""
    view = InboxView(zone=clinic_zone(conn, principal=principal))
    for status, into in (
        (AlertStatus.open, view.open),
        (AlertStatus.acknowledged, view.acknowledged),
    ):
        alerts = _listed(
            alerts_service.list_alerts, conn, principal=principal, patient_id=None, status=status
        )
        external = caseload_repository.external_ids(conn, sorted({a.patient_id for a in alerts}))
        into.extend(
            AlertRow(alert=a, external_id=external.get(a.patient_id, "?"))
            for a in sorted(alerts, key=alert_order)
        )
    return view
