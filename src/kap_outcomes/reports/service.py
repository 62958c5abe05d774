"""Report use cases: bulk rows in, outcomes/ (pure) computation, contract shapes out."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import Connection

from kap_outcomes.auth.service import Principal
from kap_outcomes.care.models import SessionKind
from kap_outcomes.clinical.points import ScorePoint
from kap_outcomes.db import utcnow
from kap_outcomes.errors import FieldProblem, invalid
from kap_outcomes.organisation.service import clinic_zone
from kap_outcomes.outcomes import cms159
from kap_outcomes.outcomes.cohort import CourseRecord, cohort_report
from kap_outcomes.policy import service as policy_service
from kap_outcomes.reports import repository
from kap_outcomes.reports.models import (
    Cms159Report,
    CohortPublic,
    GroupBy,
    OutcomesReport,
    ReportInstrument,
    StratumPublic,
)

MAX_PERIOD_DAYS = 3700
"""A report period of at most about ten years (a typo such as year 20266 is a 422)."""


def _start_of(day: date, zone: tzinfo) -> datetime:
    """Midnight of a report date in the clinic's time zone (a period is the clinic's days)."""
    return datetime.combine(day, time(0), tzinfo=zone)


EARLIEST, LATEST = date(1900, 1, 1), date(2999, 12, 31)
"""Report dates outside these are a 422: the calendar arithmetic (14 months back, a day on)
must stay inside Python's years 1 to 9999."""


def _check_period(first: date, last: date, names: tuple[str, str]) -> None:
    for name, day in zip(names, (first, last), strict=True):
        if not EARLIEST <= day <= LATEST:
            raise invalid(
                [FieldProblem(parameter=name, detail=f"between {EARLIEST} and {LATEST}")],
                detail="The report period lies outside the dates this service reports on.",
            )
    if last < first:
        raise invalid(
            [FieldProblem(parameter=names[1], detail=f"must not be before {names[0]}")],
            detail="The report period ends before it starts.",
        )
    if (last - first).days > MAX_PERIOD_DAYS:
        raise invalid(
            [FieldProblem(parameter=names[1], detail=f"at most {MAX_PERIOD_DAYS} days")],
            detail="The report period is too long.",
        )


# --- cohort outcomes ----------------------------------------------------------------------


def _route_group(doses: list[Any], induction_doses: int) -> str:
    """The route of the induction doses: one route, "mixed", or "unknown" (none recorded)."""
    induction = sorted(doses, key=lambda d: d.occurred_at)[:induction_doses]
    routes = {d.dose_route for d in induction if d.dose_route is not None}
    if not routes:
        return "unknown"
    return routes.pop() if len(routes) == 1 else "mixed"


def _booster_group(doses: list[Any]) -> str:
    return str(sum(1 for d in doses if d.kind == SessionKind.booster.value))


def outcomes_report(
    conn: Connection,
    *,
    principal: Principal,
    instrument: ReportInstrument,
    period_from: date,
    period_to: date,
    group_by: GroupBy,
) -> OutcomesReport:
    _check_period(period_from, period_to, ("from", "to"))
    version, policy = policy_service.current_policy(conn, organisation_id=principal.organisation_id)
    as_of = utcnow()
    org = principal.organisation_id
    zone = clinic_zone(conn, organisation_id=org)
    courses, dose_rows, score_rows = repository.cohort_rows(
        conn,
        organisation_id=org,
        instrument=instrument.value,
        first_from=_start_of(period_from, zone),
        first_before=_start_of(period_to + timedelta(days=1), zone),
    )
    doses: dict[str, list[Any]] = defaultdict(list)
    for row in dose_rows:
        doses[row.course_id].append(row)
    scores: dict[str, list[ScorePoint]] = defaultdict(list)
    for row in score_rows:
        patient_id, assessment_id, administered_at, total = row  # as a tuple: no name lookups
        scores[patient_id].append(ScorePoint(assessment_id, administered_at, total))
    records = []
    for course in courses:
        course_doses = doses[course.id]
        if group_by is GroupBy.route:
            group = _route_group(course_doses, course.induction_doses)
        elif group_by is GroupBy.booster_count:
            group = _booster_group(course_doses)
        else:
            group = "all"
        records.append(
            CourseRecord(
                course_id=course.id,
                group=group,
                dose_times=tuple(d.occurred_at for d in course_doses),
                induction_doses=course.induction_doses,
                ended_at=course.ended_at,
                scores=tuple(scores[course.patient_id]),
            )
        )
    report = cohort_report(
        records, instrument.value, policy, as_of, grouped=group_by is not GroupBy.none
    )
    return OutcomesReport(
        **dict(CohortPublic.model_validate(report.overall)),
        instrument=instrument,
        period_from=period_from,
        period_to=period_to,
        group_by=group_by,
        policy_version=version,
        as_of=as_of,
        groups=[CohortPublic.model_validate(g) for g in report.groups],
    )


CSV_COLUMNS = (
    "period_from",
    "period_to",
    "instrument",
    "group",
    "measure",
    "weeks",
    "day",
    "n",
    "events",
    "rate",
    "ci_low",
    "ci_high",
    "median",
    "q1",
    "q3",
    "at_risk",
    "censored",
    "survival",
)


def outcomes_csv(report: OutcomesReport) -> str:
    """The same report as CSV (RFC 4180, dates ISO 8601): one row per number, long form.

    measure: started, followed_up, scored, response, remission, change (per horizon), and one
    row per step of time_to_response and time_to_relapse. Empty cells are "not applicable".
    """
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    common = {
        "period_from": report.period_from.isoformat(),
        "period_to": report.period_to.isoformat(),
        "instrument": report.instrument.value,
    }
    cohorts: Iterable[CohortPublic] = [report, *report.groups]
    for cohort in cohorts:
        row = {**common, "group": cohort.group}
        writer.writerow({**row, "measure": "started", "n": cohort.n_started})
        writer.writerow({**row, "measure": "followed_up", "n": cohort.n_followed_up})
        for h in cohort.horizons:
            at = {**row, "weeks": h.weeks}
            writer.writerow({**at, "measure": "scored", "n": h.n_scored})
            for name, rate in (("response", h.response), ("remission", h.remission)):
                if rate is not None:
                    writer.writerow({**at, "measure": name, **rate.model_dump()})
            writer.writerow({**at, "measure": "change", **h.change.model_dump()})
        for name, curve in (
            ("time_to_response", cohort.time_to_response),
            ("time_to_relapse", cohort.time_to_relapse),
        ):
            for step in curve.steps:
                writer.writerow({**row, "measure": name, **step.model_dump()})
    return out.getvalue()


# --- CMS159 -------------------------------------------------------------------------------


def cms159_report(
    conn: Connection, *, principal: Principal, period_start: date, period_end: date
) -> Cms159Report:
    _check_period(period_start, period_end, ("period_start", "period_end"))
    as_of = utcnow()
    ident_start, _ = cms159.identification_period(period_start)
    zone = clinic_zone(conn, organisation_id=principal.organisation_id)
    by_patient: dict[str, tuple[Any, list[ScorePoint]]] = {}
    for row in repository.cms159_rows(
        conn,
        organisation_id=principal.organisation_id,
        scores_from=_start_of(ident_start, zone),
        scores_before=_start_of(period_end + timedelta(days=1), zone),
    ):
        held = by_patient.get(row.patient_id)
        if held is None:
            held = by_patient[row.patient_id] = (row, [])
        held[1].append(ScorePoint(row.id, row.administered_at, row.total))
    patients = [
        cms159.PatientRecord(
            patient_id=patient_id,
            age_group=row.age_group,
            conditions=frozenset(row.conditions.split(",")) - {""}
            if row.conditions is not None
            else None,
            phq9=tuple(points),
        )
        for patient_id, (row, points) in by_patient.items()
    ]
    report = cms159.cms159_report(patients, period_start, period_end, zone)
    return Cms159Report(
        period_start=period_start,
        period_end=period_end,
        identification_period_start=report.identification_start,
        identification_period_end=report.identification_end,
        strata=[_stratum(s) for s in report.strata],
        total=_stratum(report.total),
        not_evaluable=sum(report.not_evaluable.values()),
        not_evaluable_by_reason=dict(report.not_evaluable),
        without_depression=report.without_depression,
        as_of=as_of,
    )


def _stratum(s: cms159.Stratum) -> StratumPublic:
    return StratumPublic(
        age_group=s.age_group,
        denominator=s.denominator,
        exclusions=s.exclusions,
        numerator=s.numerator,
        rate=s.performance.rate,
        ci_low=s.performance.ci_low,
        ci_high=s.performance.ci_high,
    )
