"""The dashboard over real HTTP: the demo clinic's pages, and the caseload page for 5,000
patients against 500 (target: at most 1.5x).

A real ``kap-outcomes serve`` process on a fresh SQLite file (or ``--database-url``), an
httpx client on 127.0.0.1 holding a dashboard session cookie, as a browser would:

- the demo clinic (``kap-outcomes demo``'s seeding, 40 patients through the service layer):
  its caseload page ``/``, a patient page (two inline charts, every table), the alerts inbox
  and the standalone SVG chart, each timed over ``--repeat`` requests;
- organisations of 500 and 5,000 patients seeded in bulk as bench/caseload.py does (a course,
  20 assessments each, 2 % with an open alert): the first page of ``/`` (25 rows) timed in
  alternating rounds after one warm-up read each (the warm-up recomputes every stale summary).

    python -m bench.dashboard [--database-url URL] [--repeat 40]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from bench.caseload import seed_organisation
from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import ensure_organisation, issue_token
from kap_outcomes.dashboard.sessions import create_signin_code
from kap_outcomes.db import Database, make_engine
from kap_outcomes.demo import clinic
from kap_outcomes.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.processes import ServiceProcess, service_env  # noqa: E402


def _session(db: Database, base: str, slug: str) -> httpx.Client:
    code = db.run_write(
        partial(create_signin_code, organisation_slug=slug, role=Role.clinician,
                ttl=timedelta(minutes=5))
    )  # fmt: skip
    browser = httpx.Client(base_url=base, timeout=120)
    resp = browser.get("/signin", params={"code": code})
    assert resp.status_code == 303, resp.text
    return browser


def _timed(browser: httpx.Client, path: str, repeat: int) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        begin = time.perf_counter()
        resp = browser.get(path)
        times.append((time.perf_counter() - begin) * 1000)
        assert resp.status_code == 200, (path, resp.status_code)
    return {
        "median_ms": round(statistics.median(times), 2),
        "p90_ms": round(sorted(times)[int(len(times) * 0.9)], 2),
        "bytes": len(resp.content),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kap-dashboard-bench-"))
    url = args.database_url or f"sqlite:///{workdir}/bench.db"
    upgrade(url)
    db = Database(make_engine(url))
    out: dict[str, Any] = {"database": url.split(":", 1)[0], "repeat": args.repeat}

    begin = time.perf_counter()
    clinic.seed(db, org="demo", seed=12, patients=40, today=None, force=False)
    out["demo_seed_40_patients_s"] = round(time.perf_counter() - begin, 2)
    rng = random.Random(2026)
    orgs = {size: f"bench-{size}" for size in (500, 5000)}
    begin = time.perf_counter()
    for size, slug in orgs.items():
        seed_organisation(db, slug, size, rng)
    out["bulk_seed_5500_patients_s"] = round(time.perf_counter() - begin, 1)

    env = service_env(url) | {"KAP_WORKER_EMBEDDED": "false", "KAP_LOG_LEVEL": "WARNING"}
    server = ServiceProcess(env, workdir, ready_timeout=120)
    try:
        demo = _session(db, server.base, "demo")
        first = demo.get("/").text
        patient = re.findall(r'href="(/patients/[^"]+)"', first)[0]
        pid = patient.rsplit("/", 1)[1]
        out["demo"] = {
            "caseload_first_page": _timed(demo, "/", args.repeat),
            "patient_page": _timed(demo, patient, args.repeat),
            "alerts_inbox": _timed(demo, "/alerts", args.repeat),
        }
        token = db.run_write(
            lambda conn: issue_token(
                conn, organisation_id=ensure_organisation(conn, "demo"), role=Role.clinician
            )[1]
        )
        ehr = httpx.Client(
            base_url=server.base, timeout=60, headers={"Authorization": f"Bearer {token}"}
        )
        out["demo"]["chart_svg"] = _timed(ehr, f"/v1/patients/{pid}/charts/phq9.svg", args.repeat)
        browsers = {size: _session(db, server.base, slug) for size, slug in orgs.items()}
        warm = {}
        for size, browser in browsers.items():
            begin = time.perf_counter()
            assert browser.get("/").status_code == 200
            warm[size] = round((time.perf_counter() - begin) * 1000, 1)
        out["first_read_all_stale_ms"] = warm
        times: dict[int, list[float]] = {size: [] for size in orgs}
        for i in range(args.repeat * 2):
            for size in sorted(orgs, reverse=bool(i % 2)):
                begin = time.perf_counter()
                resp = browsers[size].get("/")
                times[size].append((time.perf_counter() - begin) * 1000)
                assert resp.status_code == 200 and resp.text.count("<tr data-patient-id=") == 25
        medians = {size: statistics.median(t) for size, t in times.items()}
        out["caseload_page_25_rows"] = {
            size: {"median_ms": round(medians[size], 2),
                   "p90_ms": round(sorted(t)[int(len(t) * 0.9)], 2)}
            for size, t in times.items()
        }  # fmt: skip
        out["ratio_5000_vs_500"] = round(medians[5000] / medians[500], 3)
    finally:
        server.stop()
        db.dispose()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
