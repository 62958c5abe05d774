"""Bulk export against a plain SELECT of the same rows written as JSON lines, and its memory.

Seeds organisations in bulk (bench.caseload's Seeder: 20 assessments per patient, 13 PHQ-9
and 7 GAD-7), then:

- **throughput** (100,000 assessments by default): the export as the worker runs it
  (``bulk.runner.run_next``: claim, one snapshot transaction, server-side cursor, every
  Patient, QuestionnaireResponse, Observation and Condition written to its NDJSON file, the
  finish) against a plain read of the same rows (the organisation's patients and
  assessments, whole rows, the same batched cursor) with each row written as one JSON line
  (orjson) to a file. Alternating, ``--repeat`` times each; the ratio is
  median(plain) / median(export), the export's share of the plain read-and-write throughput
  (goal: at least 0.3).
- **memory** (10,000 and 100,000 assessments): each export in a fresh process of its own,
  measured with tracemalloc (peak of Python allocations during the export) and the peak
  resident set (VmHWM, before and after the export; with the anonymous and file-backed parts
  at its end). Goal: the peak at 100,000 within 20 % of the peak at 10,000.

    python -m bench.bulk [--database-url URL] [--assessments 100000] [--small 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select

from bench.caseload import Seeder
from kap_outcomes.assessments.models import Assessment
from kap_outcomes.auth.service import ensure_organisation
from kap_outcomes.bulk.models import BulkExport
from kap_outcomes.bulk.repository import BATCH
from kap_outcomes.bulk.runner import run_next
from kap_outcomes.config import Settings
from kap_outcomes.db import Database, make_engine, new_id, utcnow
from kap_outcomes.migrate import upgrade
from kap_outcomes.patients.models import Patient

PER_PATIENT = 20  # Seeder.patient(): 13 PHQ-9 + 7 GAD-7


def seed(db: Database, slug: str, assessments: int, rng: random.Random) -> str:
    org_id = db.run_write(partial(ensure_organisation, slug=slug))
    seeder = Seeder(org_id, rng)
    for done in range(assessments // PER_PATIENT):
        seeder.patient()
        row = seeder.rows["patients"][-1]
        row["conditions"] = rng.choice(("depression", "depression,dysthymia", None))
        if done % 1000 == 999:
            db.run_write(seeder.flush)
    db.run_write(seeder.flush)
    if db.engine.dialect.name == "postgresql":
        db.run_write(lambda conn: conn.exec_driver_sql("ANALYZE"))
    return org_id


def queue_export(db: Database, org_id: str) -> str:
    export_id = new_id()
    db.run_write(
        lambda conn: conn.execute(
            insert(BulkExport.__table__).values(  # type: ignore[attr-defined]
                id=export_id,
                organisation_id=org_id,
                requested_by="bench",
                level="patient",
                types="Patient,QuestionnaireResponse,Observation,Condition",
                request_url="http://127.0.0.1/fhir/R4/Patient/$export",
                status="queued",
                attempts=0,
                created_at=utcnow(),
            )
        )
    )
    return export_id


def export(db: Database, settings: Settings, org_id: str) -> dict[str, Any]:
    export_id = queue_export(db, org_id)
    assert run_next(db, settings, owner=str(uuid.uuid4()))
    row = db.run_read(
        lambda conn: conn.execute(
            select(BulkExport.__table__).where(BulkExport.__table__.c.id == export_id)  # type: ignore[attr-defined]
        ).one()
    )
    assert row.status == "completed", row.error
    folder = settings.export_dir / export_id
    size = sum(f.stat().st_size for f in folder.iterdir())
    counts = {o["type"]: o["count"] for o in json.loads(row.output)}
    return {"id": export_id, "bytes": size, "counts": counts}


def plain(db: Database, org_id: str, out: Path) -> int:
    """The same rows, read whole through the same batched cursor, one JSON line each."""
    lines = 0

    def read(conn: Connection) -> None:
        nonlocal lines
        with out.open("wb") as f:
            for table in (Patient.__table__, Assessment.__table__):  # type: ignore[attr-defined]
                result = conn.execution_options(yield_per=BATCH).execute(
                    select(table).where(table.c.organisation_id == org_id)
                )
                for batch in result.partitions(BATCH):
                    for row in batch:
                        f.write(orjson.dumps(dict(row._mapping), default=str) + b"\n")
                        lines += 1

    db.run_read(read)
    return lines


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def throughput(db: Database, settings: Settings, org_id: str, repeat: int) -> dict[str, Any]:
    export_s: list[float] = []
    plain_s: list[float] = []
    made: dict[str, Any] = {}
    lines = 0
    for i in range(repeat):
        runs: list[tuple[list[float], Callable[[], Any]]] = [
            (export_s, partial(export, db, settings, org_id)),
            (plain_s, partial(plain, db, org_id, settings.export_dir / "plain.jsonl")),
        ]
        for times, fn in runs if i % 2 == 0 else reversed(runs):
            seconds, value = _timed(fn)
            times.append(seconds)
            if isinstance(value, dict):
                made = value
            else:
                lines = value
    return {
        "export_s": round(statistics.median(export_s), 3),
        "plain_s": round(statistics.median(plain_s), 3),
        "ratio": round(statistics.median(plain_s) / statistics.median(export_s), 3),
        "export_lines": sum(made["counts"].values()),
        "export_bytes": made["bytes"],
        "plain_lines": lines,
        "plain_bytes": (settings.export_dir / "plain.jsonl").stat().st_size,
        "counts": made["counts"],
    }


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def _peak_rss_kib() -> int:
    """The process's peak resident set (VmHWM). Not ru_maxrss: Linux keeps that across
    execve, so a child started by a big parent would report the parent's peak."""
    return _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory_child(database_url: str, org_id: str, export_dir: str) -> None:
    """In a fresh process: one export, its tracemalloc peak, and the peak RSS before and after.

    ``before`` is taken once everything is imported and a connection has run a query. On
    SQLite the database file is read through a memory map (``PRAGMA mmap_size``), so the
    file pages an export touches count in its resident set: the RSS then grows with the
    database read, not with what the export holds. tracemalloc counts Python allocations only.
    """
    db = Database(make_engine(database_url))
    settings = Settings(database_url=database_url, export_dir=Path(export_dir))
    db.run_read(lambda conn: conn.exec_driver_sql("SELECT 1").all())
    queue_export(db, org_id)
    rss_before = _peak_rss_kib()
    tracemalloc.start()
    assert run_next(db, settings, owner="measured")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = _peak_rss_kib()
    print(
        json.dumps(
            {
                "tracemalloc_peak_kib": round(peak / 1024),
                "peak_rss_before_kib": rss_before,
                "peak_rss_after_kib": rss_after,
                "peak_rss_delta_kib": rss_after - rss_before,
                # now, with the connection still open: anonymous memory (the heap) and
                # file-backed pages (on SQLite, the memory-mapped database)
                "rss_anon_after_kib": _status_kib("RssAnon"),
                "rss_file_after_kib": _status_kib("RssFile"),
            }
        )
    )
    db.dispose()


def memory(database_url: str, org_id: str, export_dir: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bulk", "--child", database_url, org_id, str(export_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        memory_child(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--assessments", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--memory-only", action="store_true", help="skip the throughput part")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kap-bench-bulk-"))
    url = args.database_url or f"sqlite:///{work / 'bench.db'}"
    upgrade(url)
    db = Database(make_engine(url))
    settings = Settings(database_url=url, export_dir=work / "exports")
    rng = random.Random(7)
    started = time.perf_counter()
    small = seed(db, f"bench-bulk-{uuid.uuid4().hex[:8]}", args.small, rng)
    large = seed(db, f"bench-bulk-{uuid.uuid4().hex[:8]}", args.assessments, rng)
    print(f"seeded in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    result = {
        "database": db.engine.dialect.name,
        "throughput": None if args.memory_only else throughput(db, settings, large, args.repeat),
        "memory": {
            str(args.small): memory(url, small, work / "exports"),
            str(args.assessments): memory(url, large, work / "exports"),
        },
    }
    small_peak = result["memory"][str(args.small)]["tracemalloc_peak_kib"]
    large_peak = result["memory"][str(args.assessments)]["tracemalloc_peak_kib"]
    result["memory"]["tracemalloc_peak_ratio"] = round(large_peak / small_peak, 3)
    small_rss = result["memory"][str(args.small)]["peak_rss_after_kib"]
    large_rss = result["memory"][str(args.assessments)]["peak_rss_after_kib"]
    result["memory"]["maxrss_ratio"] = round(large_rss / small_rss, 3)
    print(json.dumps(result, indent=2))
    db.dispose()


if __name__ == "__main__":
    main()
