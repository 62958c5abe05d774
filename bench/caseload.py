"""Read-side scale: the caseload's first page for 500 vs 5,000 patients, and one patient's signals.

Seeds by bulk inserts (Core executemany, scores computed by clinical.scoring as the ingest
path would), then calls the service layer in-process (no HTTP, so the figures are the
database and the rules, not the web stack):

- an organisation of 500 and one of 5,000 patients, each with a course (six induction doses),
  13 PHQ-9 and 7 GAD-7 (20 assessments) and, for 2 %, an open safety alert;
- caseload: the first read after seeding (every summary stale: answered from the stored rows,
  with stale_count), the worker's background refresh of them all, then the first page
  (limit 50) warm, then the first page after 50 patients were written to (the
  recompute of 50 stale rows), each with its number of SQL statements;
- signals and trend of one patient with 500 assessments;
- the cost of the one statement the ingest path runs for the caseload (mark_stale).

    python -m bench.caseload [--database-url URL] [--repeat 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection, event, insert

from kap_outcomes.alerts.models import Alert
from kap_outcomes.assessments.models import Assessment
from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import Principal, ensure_organisation
from kap_outcomes.care.models import CareSession, Course
from kap_outcomes.caseload import repository as caseload_repository
from kap_outcomes.caseload import service as caseload_service
from kap_outcomes.caseload.models import PatientSummary
from kap_outcomes.caseload.refresh import Refresh
from kap_outcomes.clinical.instruments import Instrument
from kap_outcomes.clinical.scoring import score
from kap_outcomes.db import Database, make_engine
from kap_outcomes.migrate import upgrade
from kap_outcomes.patients.models import Patient
from kap_outcomes.signals import service as signals_service
from kap_outcomes.signals.models import TrendInstrument

NOW = datetime.now(UTC).replace(microsecond=0)
DOSE_DAYS = (1, 3, 5, 8, 10, 12)


def _id() -> str:
    return str(uuid.uuid4())


def _items(total: int, count: int, item9: int = 0) -> list[int]:
    rest, items = total - item9, []
    for _ in range(count - 1):
        items.append(min(3, rest))
        rest -= items[-1]
    return [*items, item9]


class Seeder:
    """Rows for whole courses, inserted in bulk."""

    def __init__(self, org_id: str, rng: random.Random) -> None:
        self.org_id, self.rng = org_id, rng
        self.rows: dict[str, list[dict[str, Any]]] = {
            "patients": [], "patient_summaries": [], "courses": [], "care_sessions": [],
            "assessments": [], "alerts": [],
        }  # fmt: skip

    def assessment(
        self, pid: str, course_id: str, instrument: Instrument, items: list[int], at: datetime
    ) -> str:
        result = score(instrument, items)
        row_id = _id()
        self.rows["assessments"].append(
            {
                "id": row_id, "organisation_id": self.org_id, "patient_id": pid,
                "course_id": course_id, "session_id": None, "instrument": instrument.value,
                "items": items, "difficulty": None, "administered_at": at, "recorded_at": at,
                "source": "clinician", "valid": result.valid, "total": result.total,
                "raw_total": result.raw_total, "prorated": result.prorated,
                "missing_items": result.missing_items,
                "severity": result.severity.value if result.severity else None,
                "risk": None, "subscores": dict(result.subscores), "flags": list(result.flags),
            }
        )  # fmt: skip
        return row_id

    def patient(self, *, phq9_count: int = 13, gad7_count: int = 7, span_days: int = 120) -> str:
        pid, course_id = _id(), _id()
        start = NOW - timedelta(days=span_days)
        self.rows["patients"].append(
            {"id": pid, "organisation_id": self.org_id, "external_id": f"mrn-{pid[:13]}",
             "created_at": start}
        )  # fmt: skip
        self.rows["patient_summaries"].append(
            {"patient_id": pid, "organisation_id": self.org_id, "stale": True, "data_version": 1,
             "sort_rank": 5, "open_alerts": 0, "computed_at": start}
        )  # fmt: skip
        self.rows["courses"].append(
            {"id": course_id, "organisation_id": self.org_id, "patient_id": pid, "label": None,
             "induction_doses": 6, "started_at": start, "ended_at": None, "created_at": start}
        )  # fmt: skip
        for day in DOSE_DAYS:
            self.rows["care_sessions"].append(
                {"id": _id(), "organisation_id": self.org_id, "patient_id": pid,
                 "course_id": course_id, "kind": "dosing",
                 "occurred_at": start + timedelta(days=day), "dose_route": "iv",
                 "dose_amount_mg": 35.0, "created_at": start}
            )  # fmt: skip
        rng = self.rng
        baseline = rng.randint(12, 24)
        nadir = rng.randint(3, baseline // 2)
        relapse = rng.random() < 0.3
        self.assessment(pid, course_id, Instrument.PHQ9, _items(baseline, 9), start)
        step = (span_days - 14) / max(phq9_count - 1, 1)
        alert = rng.random() < 0.02
        last_at = start
        for i in range(1, phq9_count):
            at = start + timedelta(days=13 + step * (i - 1))
            drift = (i / phq9_count) * (baseline - nadir) if relapse else rng.randint(0, 2)
            total = max(0, min(24, nadir + round(drift) + rng.randint(-1, 1)))
            item9 = 1 if alert and i == phq9_count - 1 else 0
            total = max(total, item9)
            row_id = self.assessment(pid, course_id, Instrument.PHQ9, _items(total, 9, item9), at)
            last_at = at
            if item9:
                self.rows["alerts"].append(
                    {"id": _id(), "organisation_id": self.org_id, "patient_id": pid,
                     "assessment_id": row_id, "level": "review", "kind": "phq9_item9",
                     "status": "open", "reason": "PHQ-9 item 9 = 1",
                     "suggested_action": "administer the C-SSRS now", "created_at": at,
                     "acknowledged_at": None, "acknowledged_by": None,
                     "acknowledged_note": None, "resolved_at": None, "resolved_by": None,
                     "resolved_note": None}
                )  # fmt: skip
        for i in range(gad7_count):
            at = start + timedelta(days=span_days * i / gad7_count)
            self.assessment(pid, course_id, Instrument.GAD7, _items(rng.randint(2, 18), 7), at)
        assert last_at <= NOW
        return pid

    def flush(self, conn: Connection) -> None:
        tables = {
            "patients": Patient, "patient_summaries": PatientSummary, "courses": Course,
            "care_sessions": CareSession, "assessments": Assessment, "alerts": Alert,
        }  # fmt: skip
        for name, model in tables.items():
            rows = self.rows[name]
            for start in range(0, len(rows), 5000):
                conn.execute(insert(model.__table__), rows[start : start + 5000])  # type: ignore[attr-defined]
            rows.clear()


def seed_organisation(db: Database, slug: str, patients: int, rng: random.Random) -> str:
    org_id = db.run_write(partial(ensure_organisation, slug=slug))
    seeder = Seeder(org_id, rng)
    for done in range(patients):
        seeder.patient()
        if done % 1000 == 999:
            db.run_write(seeder.flush)
    db.run_write(seeder.flush)
    if db.engine.dialect.name == "postgresql":
        # Planner statistics, as autovacuum would have them: bulk-loaded tables have none.
        db.run_write(lambda conn: conn.exec_driver_sql("ANALYZE"))
    return org_id


@contextmanager
def counting(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": round(statistics.median(times), 2), "max_ms": round(max(times), 2)}


def caseload_figures(db: Database, org_id: str, repeat: int) -> dict[str, Any]:
    principal = Principal(token_id="bench", organisation_id=org_id, role=Role.clinician,
                          patient_id=None)  # fmt: skip

    def first_page() -> Any:
        return asyncio.run(
            caseload_service.caseload(
                db, principal=principal, booster_status=None, open_alerts_only=False,
                cursor=None, limit=50,
            )
        )  # fmt: skip

    start = time.perf_counter()
    with counting(db) as cold_statements:
        page = first_page()
    cold_ms = (time.perf_counter() - start) * 1000
    stale_then = page.stale_count

    async def refresh_all() -> None:
        job = Refresh(db)
        while await job.step():
            pass

    start = time.perf_counter()
    asyncio.run(refresh_all())
    refresh_s = time.perf_counter() - start
    page = first_page()
    assert page.stale_count == 0
    with counting(db) as warm_statements:
        first_page()
    warm = timed(first_page, 5)  # the ratio is measured separately, in alternating rounds
    everyone = [r.patient_id for r in db.run_read(
        lambda conn: caseload_repository.caseload_page(
            conn, organisation_id=org_id, booster_status=None, open_alerts_only=False,
            after=None, limit=len(page.data) and 100_000,
        )
    )]  # fmt: skip
    sample = random.Random(len(everyone)).sample(everyone, 50)

    def write_then_read() -> dict[str, float]:
        def mark(conn: Connection) -> None:
            for pid in sample:
                caseload_repository.mark_stale(conn, patient_id=pid)

        db.run_write(mark)
        # The three units of work of caseload_service.caseload, timed one by one.
        t0 = time.perf_counter()
        fresh = db.run_read(partial(caseload_service.recompute_stale, organisation_id=org_id))
        t1 = time.perf_counter()
        db.run_write(partial(caseload_repository.store_summaries, rows=fresh))
        t2 = time.perf_counter()
        db.run_read(partial(caseload_service.page, principal=principal, booster_status=None,
                            open_alerts_only=False, cursor=None, limit=50))  # fmt: skip
        t3 = time.perf_counter()
        assert len(fresh) == 50
        return {"recompute": t1 - t0, "store": t2 - t1, "page": t3 - t2, "total": t3 - t0}

    runs = [write_then_read() for _ in range(max(3, repeat // 3))]
    after_writes = {
        part: round(statistics.median(r[part] for r in runs) * 1000, 2)
        for part in ("recompute", "store", "page", "total")
    }
    statuses: dict[str, int] = {}
    for row in db.run_read(lambda conn: conn.execute(
        caseload_repository.summaries.select().where(
            caseload_repository.summaries.c.organisation_id == org_id)).all()):  # fmt: skip
        statuses[row.booster_status] = statuses.get(row.booster_status, 0) + 1
    return {
        "first_read_all_stale_ms": round(cold_ms, 1),
        "first_read_statements": len(cold_statements),
        "first_read_stale_count": stale_then,
        "background_refresh_of_all_s": round(refresh_s, 2),
        "first_page_warm": warm,
        "first_page_warm_statements": len(warm_statements),
        "first_page_after_50_writes_median_ms": after_writes,
        "first_row": page.data[0].model_dump(include={"alert_level", "booster_status"}),
        "booster_statuses": statuses,
    }


def signals_figures(db: Database, repeat: int, rng: random.Random) -> dict[str, Any]:
    org_id = db.run_write(partial(ensure_organisation, slug=f"bench-one-{uuid.uuid4().hex[:8]}"))
    seeder = Seeder(org_id, rng)
    pid = seeder.patient(phq9_count=400, gad7_count=100, span_days=700)
    db.run_write(seeder.flush)
    principal = Principal(token_id="bench", organisation_id=org_id, role=Role.clinician,
                          patient_id=None)  # fmt: skip
    signals = partial(signals_service.get_signals, principal=principal, patient_id=pid)
    trend = partial(signals_service.get_trend, principal=principal, patient_id=pid,
                    instrument=TrendInstrument.phq9)  # fmt: skip
    with counting(db) as statements:
        result = db.run_read(signals)
    return {
        "assessments": 500,
        "signals": timed(lambda: db.run_read(signals), repeat),
        "signals_statements": len(statements),
        "trend_phq9_400_points": timed(lambda: db.run_read(trend), repeat),
        "status": result.booster.status,
    }


def mark_stale_cost(db: Database, org_id: str) -> float:
    ids = [r[0] for r in db.run_read(lambda conn: conn.execute(
        caseload_repository.summaries.select().with_only_columns(
            caseload_repository.summaries.c.patient_id
        ).where(caseload_repository.summaries.c.organisation_id == org_id)).all())]  # fmt: skip

    def run(conn: Connection) -> float:
        begin = time.perf_counter()
        for pid in ids:
            caseload_repository.mark_stale(conn, patient_id=pid)
        return (time.perf_counter() - begin) / len(ids) * 1e6

    return round(db.run_write(run), 1)


def alternating_first_pages(db: Database, orgs: dict[int, str], repeat: int) -> dict[int, Any]:
    """Warm first pages of both organisations in alternating rounds (same machine state)."""
    times: dict[int, list[float]] = {size: [] for size in orgs}
    for i in range(repeat):
        for size in sorted(orgs, reverse=bool(i % 2)):
            principal = Principal(token_id="bench", organisation_id=orgs[size],
                                  role=Role.clinician, patient_id=None)  # fmt: skip
            begin = time.perf_counter()
            asyncio.run(
                caseload_service.caseload(
                    db, principal=principal, booster_status=None, open_alerts_only=False,
                    cursor=None, limit=50,
                )
            )  # fmt: skip
            times[size].append((time.perf_counter() - begin) * 1000)
    return {
        size: {"median_ms": round(statistics.median(t), 2),
               "p90_ms": round(sorted(t)[int(len(t) * 0.9)], 2)}
        for size, t in times.items()
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='kap-caseload-')}/bench.db"
    upgrade(url)
    db = Database(make_engine(url))
    rng = random.Random(7)
    try:
        results: dict[str, Any] = {"database": db.engine.dialect.name}
        orgs: dict[int, str] = {}
        for size in (500, 5000):
            begin = time.perf_counter()
            orgs[size] = seed_organisation(db, f"bench-{size}-{uuid.uuid4().hex[:8]}", size, rng)
            seeded = round(time.perf_counter() - begin, 1)
            figures = caseload_figures(db, orgs[size], args.repeat)
            results[f"caseload_{size}"] = {"seed_s": seeded, **figures}
        results["mark_stale_us_per_statement"] = mark_stale_cost(db, orgs[500])
        pages = alternating_first_pages(db, orgs, args.repeat * 5)
        for size, figures in pages.items():
            results[f"caseload_{size}"]["first_page_warm"] = figures
        results["first_page_ratio_5000_vs_500"] = round(
            pages[5000]["median_ms"] / pages[500]["median_ms"], 2
        )
        results["signals_one_patient"] = signals_figures(db, args.repeat, rng)
        print(json.dumps(results, indent=2))
    finally:
        db.dispose()


if __name__ == "__main__":
    main()
