"""The reports against a plain query that reads the same rows (goal: at most 3x).

Seeds one organisation of 5,000 patients in bulk (bench.caseload's Seeder: one course with six
iv induction doses, 13 PHQ-9 and 7 GAD-7 = 20 assessments each, spread over 420 days so that
CMS159's twelve months can be followed), gives each patient an age group and recorded
conditions, then times in-process (no HTTP: the figures are the database and the rules):

- outcomes: `reports.service.outcomes_report` (PHQ-9, group_by=route) against a plain read of
  the same rows: the organisation's courses, dose sessions and valid PHQ-9s, fetched whole;
- outcomes as CSV: the same plus `outcomes_csv`;
- cms159: `reports.service.cms159_report` against a plain read of the organisation's valid
  PHQ-9s in the period joined to their patients.

Each is run `--repeat` times, alternating report and plain read; the ratio is
median(report) / median(plain read).

    python -m bench.reports [--database-url URL] [--patients 5000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from functools import partial
from typing import Any

from sqlalchemy import Connection, select, true

from bench.caseload import NOW, Seeder
from kap_outcomes.assessments.models import Assessment
from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import Principal, ensure_organisation
from kap_outcomes.care.models import CareSession, Course
from kap_outcomes.db import Database, make_engine
from kap_outcomes.migrate import upgrade
from kap_outcomes.outcomes.cms159 import identification_period
from kap_outcomes.patients.models import Patient
from kap_outcomes.reports import service
from kap_outcomes.reports.models import GroupBy, ReportInstrument

SPAN_DAYS = 420
CONDITIONS = ("depression", "depression", "depression,dysthymia", "bipolar_disorder,depression", "")


def seed(db: Database, patients: int, rng: random.Random) -> str:
    org_id = db.run_write(partial(ensure_organisation, slug="bench-reports"))
    seeder = Seeder(org_id, rng)
    for done in range(patients):
        seeder.patient(span_days=SPAN_DAYS)
        row = seeder.rows["patients"][-1]
        row["age_group"] = rng.choice(("12-17", "18+", "18+", "18+", None))
        row["conditions"] = rng.choice((*CONDITIONS, None))
        if done % 1000 == 999:
            db.run_write(seeder.flush)
    db.run_write(seeder.flush)
    if db.engine.dialect.name == "postgresql":
        db.run_write(lambda conn: conn.exec_driver_sql("ANALYZE"))
    return org_id


def plain_outcomes(conn: Connection, org_id: str) -> int:
    """The organisation's courses, dose sessions and valid PHQ-9s, read whole (typed
    columns, as any reader of the data gets them), nothing computed."""
    c, s, a = Course.__table__.c, CareSession.__table__.c, Assessment.__table__.c  # type: ignore[attr-defined]
    courses = conn.execute(
        select(c.id, c.patient_id, c.induction_doses, c.ended_at).where(c.organisation_id == org_id)
    ).all()
    doses = conn.execute(
        select(s.course_id, s.occurred_at, s.kind, s.dose_route).where(
            s.organisation_id == org_id, s.kind.in_(("dosing", "booster"))
        )
    ).all()
    scores = conn.execute(
        select(a.patient_id, a.id, a.administered_at, a.total).where(
            a.organisation_id == org_id,
            a.instrument == "phq9",
            a.valid == true(),
            a.total.is_not(None),
            a.status != "entered-in-error",
        )
    ).all()
    return len(courses) + len(doses) + len(scores)


def plain_cms159(conn: Connection, org_id: str, start: date, end: date) -> int:
    """The organisation's valid PHQ-9s of the period joined to their patients, read whole."""
    a, p = Assessment.__table__.c, Patient.__table__.c  # type: ignore[attr-defined]
    rows = conn.execute(
        select(p.id, p.age_group, p.conditions, a.id, a.administered_at, a.total)
        .select_from(Assessment.__table__.join(Patient.__table__, p.id == a.patient_id))  # type: ignore[attr-defined]
        .where(
            a.organisation_id == org_id,
            a.instrument == "phq9",
            a.valid == true(),
            a.total.is_not(None),
            a.status != "entered-in-error",
            a.administered_at >= datetime.combine(start, clock(0), tzinfo=UTC),
            a.administered_at < datetime.combine(end + timedelta(days=1), clock(0), tzinfo=UTC),
        )
    ).all()
    return len(rows)


def compare(
    db: Database,
    report: Callable[[Connection], Any],
    plain: Callable[[Connection], Any],
    repeat: int,
) -> dict[str, Any]:
    """Wall time, and this process's CPU time: on a busy machine the CPU time of in-process
    work moves far less than the wall clock (on PostgreSQL it leaves out the server's share,
    the same statements on both sides, so its ratio is the larger of the two)."""
    wall: dict[str, list[float]] = {"report": [], "plain": []}
    cpu: dict[str, list[float]] = {"report": [], "plain": []}
    for i in range(repeat):
        order = [("report", report), ("plain", plain)]
        if i % 2:
            order.reverse()
        for name, fn in order:
            started, started_cpu = time.perf_counter(), time.process_time()
            db.run_read(fn)
            wall[name].append((time.perf_counter() - started) * 1000)
            cpu[name].append((time.process_time() - started_cpu) * 1000)
    r, p = statistics.median(wall["report"]), statistics.median(wall["plain"])
    rc, pc = statistics.median(cpu["report"]), statistics.median(cpu["plain"])
    return {
        "report_ms": round(r, 1),
        "plain_read_ms": round(p, 1),
        "ratio": round(r / p, 2),
        "report_cpu_ms": round(rc, 1),
        "plain_read_cpu_ms": round(pc, 1),
        "cpu_ratio": round(rc / pc, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='kap-reports-')}/bench.db"
    upgrade(url)
    db = Database(make_engine(url))
    started = time.perf_counter()
    org_id = seed(db, args.patients, random.Random(20261130))
    seeded_s = time.perf_counter() - started
    principal = Principal(
        token_id="bench", organisation_id=org_id, role=Role.clinician, patient_id=None
    )
    first = (NOW - timedelta(days=SPAN_DAYS + 1)).date()
    outcomes = partial(
        service.outcomes_report,
        principal=principal,
        instrument=ReportInstrument.phq9,
        period_from=first,
        period_to=NOW.date(),
        group_by=GroupBy.route,
    )
    month = (NOW - timedelta(days=SPAN_DAYS - 90)).date().replace(day=1)
    period_start, period_end = month, NOW.date()
    ident_start, _ = identification_period(period_start)
    cms = partial(
        service.cms159_report, principal=principal, period_start=period_start, period_end=period_end
    )
    sample = db.run_read(outcomes)
    measure = db.run_read(cms)
    figures = {
        "database": db.engine.dialect.name,
        "patients": args.patients,
        "assessments_per_patient": 20,
        "seed_seconds": round(seeded_s, 1),
        "outcomes_n_started": sample.n_started,
        "cms159_total": measure.total.model_dump(),
        "cms159_not_evaluable": measure.not_evaluable,
        "outcomes": compare(db, outcomes, partial(plain_outcomes, org_id=org_id), args.repeat),
        "outcomes_csv": compare(
            db,
            lambda conn: service.outcomes_csv(outcomes(conn)),
            partial(plain_outcomes, org_id=org_id),
            args.repeat,
        ),
        "cms159": compare(
            db,
            cms,
            partial(plain_cms159, org_id=org_id, start=ident_start, end=period_end),
            args.repeat,
        ),
    }
    print(json.dumps(figures, indent=2))
    db.dispose()


if __name__ == "__main__":
    main()
