"""PHQ-9 ingest throughput of the real server against a database-free baseline.

Both servers run here, one uvicorn worker each, with the same options; the real one on a fresh
SQLite file (WAL, synchronous=FULL: every 201 is durably committed) with a real token. Load
comes from ``wrk`` (Debian package ``wrk``) in alternating rounds so that both see the same
machine conditions; the result is the ratio of the medians.

    python -m bench.ingest [--rounds 6] [--seconds 5] [--connections 16] [--webhook TYPES]
                           [--database-url postgresql+psycopg://…/empty_db] [--workers 2]

``--database-url`` runs the real server on that database (migrated first; use an empty one)
instead of a fresh SQLite file. ``--workers N`` runs both servers with N uvicorn worker
processes (``serve --workers N`` and ``uvicorn --workers N``).

``--webhook alert.opened`` (comma-separated event types) runs the real server with one
webhook subscribed to those types, delivered to a receiver in this process.
``--item9-every N`` sends, as every N-th request of both servers, the same PHQ-9 with item 9
answered 1: on the real server each of those opens a safety alert (an ``alert.opened``
event). Without it no request opens an alert, so a webhook on ``alert.opened`` receives
nothing. ``--worker-process`` serves with ``KAP_WORKER_EMBEDDED=false`` and runs
``kap-outcomes worker`` beside the server (the deliveries leave the server's process).

The configurations of issue #11's goal (the ratio with one webhook within 10 % of the ratio
without), each to be compared with the same command without ``--webhook``:

    python -m bench.ingest --webhook assessment.submitted          # every ingest delivered
    python -m bench.ingest --item9-every 10 --webhook alert.opened  # 1 in 10 opens an alert
    python -m bench.ingest --worker-process --webhook assessment.submitted
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.receiver import ArrivalLog

BODY = {
    "instrument": "phq9",
    "items": [1, 2, 1, 0, 1, 2, 1, 0, 0],
    "difficulty": 1,
    "administered_at": "2026-03-02T15:04:05Z",
    "source": "clinician",
}

ITEM9_BODY = {**BODY, "items": [1, 2, 1, 0, 1, 2, 1, 0, 1]}
"""The same PHQ-9 with item 9 answered 1 ("several days"): it opens a safety alert."""

LUA = """
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
"""

LUA_ITEM9 = """
local item9 = [[{item9}]]
local every = {every}
local n = 0
request = function()
  n = n + 1
  if n % every == 0 then
    return wrk.format(nil, nil, nil, item9)
  end
  return wrk.format()
end
"""
"""Appended to ``LUA`` with ``--item9-every``: every N-th request (one wrk thread, so one
counter over all connections) carries the item-9 body."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str) -> None:
    deadline = time.monotonic() + 120  # a busy machine starting two processes is slow
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def run_wrk(url: str, script: Path, seconds: int, connections: int) -> float:
    return run_wrk_counted(url, script, seconds, connections)[0]


def run_wrk_counted(url: str, script: Path, seconds: int, connections: int) -> tuple[float, int]:
    """Requests per second and the number of requests of one wrk run."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"errors during the run:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if not match or not total:
        raise RuntimeError(out)
    return float(match.group(1)), int(total.group(1))


def cli_token(exe: list[str], env: dict[str, str], role: str) -> str:
    """A token of ``role`` in the organisation ``bench``, made by ``kap-outcomes token create``
    (which prints it as its last line)."""
    out = subprocess.run(
        [*exe, "token", "create", "--org", "bench", "--role", role],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.strip().splitlines()[-1]


def subscribe(exe: list[str], env: dict[str, str], port: int, types: str) -> ArrivalLog:
    admin = cli_token(exe, env, "admin")
    receiver = ArrivalLog()
    httpx.post(
        f"http://127.0.0.1:{port}/v1/webhooks",
        json={"url": receiver.url, "event_types": types.split(",")},
        headers={"Authorization": f"Bearer {admin}"},
    ).raise_for_status()
    return receiver


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--webhook", help="subscribe one webhook to these event types")
    parser.add_argument("--database-url", help="an empty database (default: a SQLite file)")
    parser.add_argument("--workers", type=int, default=1, help="processes of each server")
    parser.add_argument(
        "--item9-every",
        type=int,
        default=0,
        help="every N-th request answers item 9 and opens an alert (0: none does)",
    )
    parser.add_argument(
        "--worker-process",
        action="store_true",
        help="KAP_WORKER_EMBEDDED=false on the server, `kap-outcomes worker` beside it",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="kap-bench-"))
    env = {
        **os.environ,
        "KAP_DATABASE_URL": args.database_url or f"sqlite:///{work / 'bench.db'}",
        # the per-token limiter runs on every request (its cost is measured) but never trips
        "KAP_RATE_LIMIT_PER_MINUTE": str(10**9),
        "KAP_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
    }
    if args.worker_process:
        env["KAP_WORKER_EMBEDDED"] = "false"
    exe = [sys.executable, "-m", "kap_outcomes.cli"]
    if args.database_url:
        subprocess.run([*exe, "db", "upgrade"], env=env, check=True, capture_output=True)
    token = cli_token(exe, env, "clinician")

    real_port, base_port = free_port(), free_port()
    real = subprocess.Popen(
        [*exe, "serve", "--port", str(real_port), "--workers", str(args.workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.baseline:app",
            "--port",
            str(base_port),
            "--no-access-log",
            "--no-server-header",
            "--log-level",
            "warning",
            "--workers",
            str(args.workers),
        ],
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
    try:
        wait_up(f"http://127.0.0.1:{real_port}/healthz")
        wait_up(f"http://127.0.0.1:{base_port}/docs")
        headers = {"Authorization": f"Bearer {token}"}
        receiver = subscribe(exe, env, real_port, args.webhook) if args.webhook else None
        patient = httpx.post(
            f"http://127.0.0.1:{real_port}/v1/patients",
            json={"external_id": "bench-1"},
            headers=headers,
        ).json()["id"]
        check = httpx.post(
            f"http://127.0.0.1:{real_port}/v1/patients/{patient}/assessments",
            json=BODY,
            headers=headers,
        )
        check.raise_for_status()
        base_size = len(
            httpx.post(
                f"http://127.0.0.1:{base_port}/v1/patients/{patient}/assessments", json=BODY
            ).content
        )
        script = work / "post.lua"
        lua = LUA.format(body=json.dumps(BODY), token=token)
        if args.item9_every:
            lua += LUA_ITEM9.format(item9=json.dumps(ITEM9_BODY), every=args.item9_every)
        script.write_text(lua)
        path = f"/v1/patients/{patient}/assessments"
        real_requests = 0
        real_rps: list[float] = []
        base_rps: list[float] = []
        for i in range(args.rounds):
            order = [("base", base_port), ("real", real_port)]
            if i % 2:
                order.reverse()
            for name, port in order:
                rps, requests = run_wrk_counted(
                    f"http://127.0.0.1:{port}{path}", script, args.seconds, args.connections
                )
                (real_rps if name == "real" else base_rps).append(rps)
                real_requests += requests if name == "real" else 0
                print(f"round {i + 1} {name}: {rps:,.0f} req/s", flush=True)
        real_med, base_med = statistics.median(real_rps), statistics.median(base_rps)
        if receiver is not None:  # the deliveries of the last round are under way
            time.sleep(2)
        print(
            json.dumps(
                {
                    "real_rps_median": round(real_med),
                    "baseline_rps_median": round(base_med),
                    "ratio": round(real_med / base_med, 3),
                    "response_bytes": {"real": len(check.content), "baseline": base_size},
                    "rounds": args.rounds,
                    "seconds": args.seconds,
                    "connections": args.connections,
                    "webhook": args.webhook,
                    "database": env["KAP_DATABASE_URL"].split(":", 1)[0],
                    "workers": args.workers,
                    "worker": "process" if worker is not None else "embedded",
                    "item9_every": args.item9_every,
                    "real_requests": real_requests,
                    "deliveries_received": receiver.count if receiver else None,
                },
                indent=2,
            )
        )
    finally:
        stop([p for p in (real, base, worker) if p is not None])
        shutil.rmtree(work, ignore_errors=True)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGINT to every process at once, then wait for each (killed after 10 s)."""
    for proc in procs:
        proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
