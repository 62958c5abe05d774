"""Latency from the 201 of an item-9 PHQ-9 to the arrival of its ``alert.opened`` webhook,
under the ingest load of bench/ingest.py (same body, same wrk options).

The real server (``kap-outcomes serve``, its delivery worker embedded) runs with a webhook
on ``alert.opened`` pointing at a receiver in this process. While wrk drives the ingest
route, a probe posts a PHQ-9 with item 9 answered (it opens an alert) every
``--probe-interval`` seconds and notes when its 201 came; the receiver notes when the alert's
event arrived (same clock). Reports p50, p99 and max.

    python -m bench.webhooks [--database-url postgresql+psycopg://…] [--seconds 20]

Without ``--database-url`` a fresh SQLite file; a PostgreSQL URL must name an empty
database of its own (it is migrated here). ``--worker-process`` serves with
``KAP_WORKER_EMBEDDED=false`` and runs ``kap-outcomes worker`` beside the server: the worker
then learns of new events by polling (``KAP_WORKER_POLL_INTERVAL_S``, 0.5 s by default)
rather than from the server's bell.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.ingest import BODY, LUA, free_port, run_wrk, wait_up
from bench.receiver import ArrivalLog

PROBE = {**BODY, "items": [1, 1, 1, 1, 1, 1, 1, 1, 1], "source": "patient"}


def cli(exe: list[str], env: dict[str, str], *args: str) -> str:
    out = subprocess.run([*exe, *args], env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--probe-interval", type=float, default=0.1)
    parser.add_argument("--types", default="alert.opened", help="what the webhook subscribes to")
    parser.add_argument(
        "--worker-process",
        action="store_true",
        help="KAP_WORKER_EMBEDDED=false on the server, `kap-outcomes worker` beside it",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="kap-bench-hooks-"))
    url = args.database_url or f"sqlite:///{work / 'bench.db'}"
    env = {
        **os.environ,
        "KAP_DATABASE_URL": url,
        "KAP_RATE_LIMIT_PER_MINUTE": str(10**9),
        "KAP_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
    }
    if args.worker_process:
        env["KAP_WORKER_EMBEDDED"] = "false"
    exe = [sys.executable, "-m", "kap_outcomes.cli"]
    cli(exe, env, "db", "upgrade")
    token = cli(exe, env, "token", "create", "--org", "bench", "--role", "clinician")
    admin = cli(exe, env, "token", "create", "--org", "bench", "--role", "admin")
    receiver = ArrivalLog()
    port = free_port()
    server = subprocess.Popen(
        [*exe, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = (
        subprocess.Popen(
            [*exe, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if args.worker_process
        else None
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(f"{base}/healthz")
        headers = {"Authorization": f"Bearer {token}"}
        hook = httpx.post(
            f"{base}/v1/webhooks",
            json={"url": receiver.url, "event_types": args.types.split(",")},
            headers={"Authorization": f"Bearer {admin}"},
        )
        hook.raise_for_status()
        load_patient, probe_patient = (
            httpx.post(f"{base}/v1/patients", json={"external_id": name}, headers=headers).json()[
                "id"
            ]
            for name in ("bench-load", "bench-probe")
        )
        script = work / "post.lua"
        script.write_text(LUA.format(body=json.dumps(BODY), token=token))
        result: dict[str, Any] = {}
        load = threading.Thread(
            target=lambda: result.update(
                rps=run_wrk(
                    f"{base}/v1/patients/{load_patient}/assessments",
                    script,
                    args.seconds,
                    args.connections,
                )
            )
        )
        load.start()
        time.sleep(1)  # the load is on
        acked: dict[str, float] = {}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            while load.is_alive():
                resp = http.post(f"/v1/patients/{probe_patient}/assessments", json=PROBE)
                at = time.monotonic()
                resp.raise_for_status()
                for alert in resp.json()["alerts"]:
                    acked[alert["id"]] = at
                time.sleep(args.probe_interval)
        load.join()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not set(acked) <= set(receiver.arrived):
            time.sleep(0.1)
        latencies = [
            (receiver.arrived[a] - t) * 1000 for a, t in acked.items() if a in receiver.arrived
        ]
        print(
            json.dumps(
                {
                    "database": url.split(":")[0].split("+")[0],
                    "subscribed": args.types,
                    "probes": len(acked),
                    "lost": len(set(acked) - set(receiver.arrived)),
                    "latency_ms_p50": round(statistics.median(latencies), 1),
                    "latency_ms_p99": round(percentile(latencies, 0.99), 1),
                    "latency_ms_max": round(max(latencies), 1),
                    "ingest_rps_during": round(result.get("rps", 0)),
                    "deliveries_received": receiver.count,
                    "seconds": args.seconds,
                    "connections": args.connections,
                    "worker": "process" if worker is not None else "embedded",
                },
                indent=2,
            )
        )
    finally:
        for proc in (server, worker):
            if proc is None:
                continue
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        receiver.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
