"""Ingest and the caseload as the database grows (10,000 → 1,000,000 assessments).

One real server (`kap-outcomes serve`, one process, the worker embedded) on an empty database
of your choice (PostgreSQL: `--database-url postgresql+psycopg://…/empty_db`). At each step
the database is grown by bulk inserts into one organisation (the caseload seeder: a course of
six doses, 13 PHQ-9 and 7 GAD-7 per patient, 20 assessments each; no ANALYZE is run, as after
a real bulk load), then measured over HTTP:

- ingest: `wrk` on `POST /v1/patients/{id}/assessments` (another organisation), req/s;
- caseload: the first page (limit 50) of the grown organisation, warm, median of 20;
- at the last step: a policy change, then the first page right after it (every row stale),
  how long the worker takes to bring `stale_count` to 0, and the first page meanwhile; and,
  for comparison, what the old first read paid (the whole organisation recomputed at once,
  in-process).

    python -m bench.growth --database-url URL [--steps 10000,100000,300000,1000000]
                           [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from bench.caseload import Seeder
from bench.ingest import BODY, LUA, free_port, run_wrk, wait_up
from kap_outcomes.auth.service import ensure_organisation
from kap_outcomes.caseload import repository as caseload_repository
from kap_outcomes.caseload import service as caseload_service
from kap_outcomes.db import Database, make_engine

ASSESSMENTS_PER_PATIENT = 20


def _token(exe: list[str], env: dict[str, str], org: str, role: str) -> str:
    out = subprocess.run([*exe, "token", "create", "--org", org, "--role", role], env=env,
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    return out.strip().splitlines()[-1]


def _median_ms(fn: Any, times: int) -> float:
    spent = []
    for _ in range(times):
        start = time.perf_counter()
        fn()
        spent.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(spent), 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True, help="an empty database")
    parser.add_argument("--steps", default="10000,100000,300000,1000000")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    work = Path(tempfile.mkdtemp(prefix="kap-growth-"))
    env = {**os.environ, "KAP_DATABASE_URL": args.database_url,
           "KAP_RATE_LIMIT_PER_MINUTE": "0"}  # fmt: skip
    exe = [sys.executable, "-m", "kap_outcomes.cli"]
    subprocess.run([*exe, "db", "upgrade"], env=env, check=True, capture_output=True)
    ingest_token = _token(exe, env, "growth-ingest", "clinician")
    clinician = _token(exe, env, "growth-clinic", "clinician")
    admin = _token(exe, env, "growth-clinic", "admin")
    db = Database(make_engine(args.database_url))
    org_id = db.run_write(partial(ensure_organisation, slug="growth-clinic"))
    port = free_port()
    server = subprocess.Popen([*exe, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    results: list[dict[str, Any]] = []
    try:
        wait_up(f"{base}/readyz")
        http = httpx.Client(base_url=base, timeout=120)
        ingest_headers = {"Authorization": f"Bearer {ingest_token}"}
        staff = {"Authorization": f"Bearer {clinician}"}
        patient = http.post("/v1/patients", json={"external_id": "growth-1"},
                            headers=ingest_headers).json()["id"]  # fmt: skip
        script = work / "post.lua"
        script.write_text(LUA.format(body=json.dumps(BODY), token=ingest_token))
        url = f"{base}/v1/patients/{patient}/assessments"
        seeder = Seeder(org_id, random.Random(11))
        patients = 0

        def page() -> dict[str, Any]:
            resp = http.get("/v1/caseload", params={"limit": 50}, headers=staff)
            resp.raise_for_status()
            return dict(resp.json())

        for target in steps:
            begin = time.perf_counter()
            while patients * ASSESSMENTS_PER_PATIENT < target:
                seeder.patient()
                patients += 1
                if patients % 1000 == 0:
                    db.run_write(seeder.flush)
            db.run_write(seeder.flush)
            seeded_s = round(time.perf_counter() - begin, 1)
            # the refresh of the bulk-loaded rows by the embedded worker, before measuring
            refresh_begin = time.perf_counter()
            while page()["stale_count"]:
                time.sleep(0.5)
            refreshed_s = round(time.perf_counter() - refresh_begin, 1)
            rps = [run_wrk(url, script, args.seconds, args.connections) for _ in range(args.rounds)]
            step = {
                "assessments_seeded": patients * ASSESSMENTS_PER_PATIENT,
                "patients": patients,
                "seed_s": seeded_s,
                "worker_refresh_of_the_load_s": refreshed_s,
                "ingest_rps_median": round(statistics.median(rps)),
                "ingest_rps_rounds": [round(r) for r in rps],
                "caseload_first_page_ms": _median_ms(page, 20),
            }
            print(json.dumps(step), flush=True)
            results.append(step)

        # a policy change on the whole organisation
        headers = {"Authorization": f"Bearer {admin}"}
        etag = http.get("/v1/policy", headers=headers).headers["ETag"]
        changed = http.put("/v1/policy", json={"phq9": {"rise_from_nadir": 4}},
                           headers={**headers, "If-Match": etag})  # fmt: skip
        changed.raise_for_status()
        start = time.perf_counter()
        first = page()
        first_ms = round((time.perf_counter() - start) * 1000, 1)
        during: list[float] = []
        while True:
            start = time.perf_counter()
            current = page()
            during.append((time.perf_counter() - start) * 1000)
            if current["stale_count"] == 0:
                break
            time.sleep(0.25)
        refresh_s = round(sum(during) / 1000 + 0.25 * (len(during) - 1), 1)
        # what the first read used to pay: the whole organisation recomputed at once
        db.run_write(partial(caseload_repository.mark_organisation_stale, organisation_id=org_id))
        start = time.perf_counter()
        rows = db.run_read(partial(caseload_service.recompute_stale, organisation_id=org_id,
                                   limit=10**9))  # fmt: skip
        db.run_write(partial(caseload_repository.store_summaries, rows=rows))
        old_first_read_s = round(time.perf_counter() - start, 1)
        policy = {
            "patients": patients,
            "first_page_after_policy_change_ms": first_ms,
            "stale_count_then": first["stale_count"],
            "worker_refresh_s": refresh_s,
            "first_page_during_refresh_median_ms": round(statistics.median(during), 1),
            "first_page_during_refresh_max_ms": round(max(during), 1),
            "whole_organisation_recompute_in_one_go_s": old_first_read_s,
            "rows_recomputed_in_one_go": len(rows),
        }
        print(json.dumps(policy), flush=True)
        print(json.dumps({"steps": results, "policy_change": policy}, indent=2))
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        db.dispose()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
