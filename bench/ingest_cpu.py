"""CPU time per PHQ-9 ingest, in-process, against the database-free baseline: a figure that
depends far less on how busy the machine is than requests per second do.

Both apps are driven through ASGI in this process (no sockets, no HTTP parsing: that part is
the same for both and measured by ``ingest.py``), 16 requests in flight at a time, so the real
app's group commit batches as it does under wrk. The figure is CPU seconds of this process
(every thread: the event loop, the commit thread, the embedded worker) per request.

    python -m bench.ingest_cpu [--requests 3000] [--rounds 5] [--profile out.prof]
                               [--webhook TYPES]

``--profile`` writes a cProfile of one extra round of the real app (``python -m pstats``,
or ``snakeviz``) to attribute the cost by layer; its clock is the CPU time of the event
loop's thread (where the route, the group commit's statements and the embedded worker run),
not wall time, which on a shared machine counts waits for the GIL and the CPU.
``--webhook assessment.submitted`` subscribes one webhook; its receiver runs in a child
process (its CPU is not the server's), and a round of the real app lasts until every delivery
its requests caused has arrived, so the figure is the CPU of a request and of its delivery
(``--receiver-here`` keeps the receiver in this process and the round ends with its last
request, as the harness did before).

``--item9-every N`` answers PHQ-9 item 9 with 1 in every N-th submission (each of those opens
an alert, hence an ``alert.opened`` event); without it no submission opens one. With
``--webhook alert.opened`` only those are delivered.

``--worker-process`` runs the app without its embedded worker (``KAP_WORKER_EMBEDDED=false``)
and ``kap-outcomes worker`` as a child process beside it; the figure is then the CPU of this
process and of the worker process together (each is also shown on its own).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from bench.ingest import BODY, ITEM9_BODY
from bench.receiver import ArrivalLog, ReceiverProcess

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


async def call(
    app: App, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        + [(b"content-length", str(len(body)).encode()), (b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    status = 0
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


def child_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a running child process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Load:
    """Drives one app: the bodies in turn (every ``item9_every``-th opens an alert), counting
    what was sent so that a round can wait for the deliveries it caused."""

    def __init__(self, item9_every: int) -> None:
        self.item9_every = item9_every
        self.sent = 0
        self.item9_sent = 0
        self._plain, self._item9 = orjson.dumps(BODY), orjson.dumps(ITEM9_BODY)

    def body(self) -> bytes:
        self.sent += 1
        if self.item9_every and self.sent % self.item9_every == 0:
            self.item9_sent += 1
            return self._item9
        return self._plain

    async def run(
        self,
        app: App,
        path: str,
        headers: dict[str, str],
        n: int,
        concurrency: int,
        arrived: Callable[[], bool] | None = None,
        worker: int | None = None,
    ) -> tuple[float, float]:
        """CPU seconds per request of this process and of the worker process (0 without one)
        over ``n`` requests, ``concurrency`` in flight (and, with ``arrived``, until it says
        that every delivery has arrived)."""
        left = n

        async def client() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                status, answer = await call(app, "POST", path, self.body(), headers)
                if status != 201:
                    raise RuntimeError(f"{status}: {answer[:300]!r}")

        started = time.process_time()
        worker_started = child_cpu(worker) if worker is not None else 0.0
        await asyncio.gather(*(client() for _ in range(concurrency)))
        if arrived is not None:
            deadline = time.monotonic() + 60
            while not arrived() and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a child
                await asyncio.sleep(0.01)
        here = (time.process_time() - started) / n
        there = (child_cpu(worker) - worker_started) / n if worker is not None else 0.0
        return here, there


def prepare(database_url: str | None, *, worker_process: bool) -> tuple[str, str]:
    """A migrated database and two tokens of one organisation (clinician, admin)."""
    work = Path(tempfile.mkdtemp(prefix="kap-bench-cpu-"))
    os.environ["KAP_DATABASE_URL"] = database_url or f"sqlite:///{work / 'bench.db'}"
    os.environ["KAP_RATE_LIMIT_PER_MINUTE"] = str(10**9)
    os.environ["KAP_WEBHOOK_ALLOWED_NETWORKS"] = '["127.0.0.0/8"]'
    if worker_process:
        os.environ["KAP_WORKER_EMBEDDED"] = "false"
    exe = [sys.executable, "-m", "kap_outcomes.cli"]
    subprocess.run([*exe, "db", "upgrade"], check=True, capture_output=True)

    def token(role: str) -> str:
        out = subprocess.run(
            [*exe, "token", "create", "--org", "bench-cpu", "--role", role],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip().splitlines()[-1]

    return token("clinician"), token("admin")


def start_worker() -> subprocess.Popen[bytes]:
    """``kap-outcomes worker`` on the same database (the environment ``prepare`` set)."""
    return subprocess.Popen(
        [sys.executable, "-m", "kap_outcomes.cli", "worker"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def expected_deliveries(types: list[str], load: Load) -> int:
    """How many deliveries the requests sent so far cause (the webhook is subscribed before
    the first of them)."""
    return load.sent * ("assessment.submitted" in types) + load.item9_sent * (
        "alert.opened" in types
    )


async def main_async(args: argparse.Namespace, clinician: str, admin: str) -> dict[str, Any]:
    from fastapi import FastAPI

    from bench.baseline import app as baseline
    from kap_outcomes.app import create_app
    from kap_outcomes.config import get_settings

    get_settings.cache_clear()
    app: FastAPI = create_app(get_settings())
    headers = {"Authorization": f"Bearer {clinician}", "Content-Type": "application/json"}
    receiver: ArrivalLog | ReceiverProcess | None = None
    result: dict[str, Any] = {}
    real_load, base_load = Load(args.item9_every), Load(args.item9_every)
    types = args.webhook.split(",") if args.webhook else []

    def arrived() -> bool:
        return receiver is None or receiver.count >= expected_deliveries(types, real_load)

    wait = None if args.receiver_here else arrived
    worker = start_worker() if args.worker_process else None
    pid = worker.pid if worker is not None else None
    try:
        async with app.router.lifespan_context(app), baseline.router.lifespan_context(baseline):
            if args.webhook:
                receiver = ArrivalLog() if args.receiver_here else ReceiverProcess()
                hook = orjson.dumps({"url": receiver.url, "event_types": types})
                as_admin = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}
                status, answer = await call(app, "POST", "/v1/webhooks", hook, as_admin)
                assert status == 201, answer
            status, answer = await call(
                app, "POST", "/v1/patients", orjson.dumps({"external_id": "cpu-1"}), headers
            )
            assert status == 201, answer
            path = f"/v1/patients/{orjson.loads(answer)['id']}/assessments"
            # warm up both
            await real_load.run(app, path, headers, 300, args.concurrency, wait, pid)
            await base_load.run(baseline, path, headers, 300, args.concurrency)
            real: list[float] = []
            app_only: list[float] = []
            base: list[float] = []
            for i in range(args.rounds):
                for target in (baseline, app) if i % 2 else (app, baseline):
                    if target is app:
                        here, there = await real_load.run(
                            app, path, headers, args.requests, args.concurrency, wait, pid
                        )
                        real.append(here + there)
                        app_only.append(here)
                    else:
                        here, _ = await base_load.run(
                            baseline, path, headers, args.requests, args.concurrency
                        )
                        base.append(here)
                print(
                    f"round {i + 1}: real {real[-1] * 1e6:,.0f} µs"
                    + (f" (app {app_only[-1] * 1e6:,.0f} µs)" if pid is not None else "")
                    + f", baseline {base[-1] * 1e6:,.0f} µs",
                    file=sys.stderr,
                    flush=True,
                )
            if args.profile:
                profiler = cProfile.Profile(time.thread_time)  # CPU of the loop's thread
                profiler.enable()
                await real_load.run(app, path, headers, args.requests, args.concurrency, wait, pid)
                profiler.disable()
                profiler.dump_stats(args.profile)
            await asyncio.sleep(1.0)  # deliveries under way
            real_us, base_us = statistics.median(real) * 1e6, statistics.median(base) * 1e6
            result = {
                "real_cpu_us_per_request": round(real_us, 1),
                "baseline_cpu_us_per_request": round(base_us, 1),
                "ratio": round(base_us / real_us, 3),
                "real_rounds_us": [round(r * 1e6) for r in real],
                "rounds": args.rounds,
                "requests": args.requests,
                "webhook": args.webhook,
                "item9_every": args.item9_every,
                "alert_share": round(real_load.item9_sent / real_load.sent, 4),
                "worker": "process" if pid is not None else "embedded",
                "deliveries_expected": expected_deliveries(types, real_load) if types else None,
                "deliveries_received": receiver.count if receiver else None,
            }
            if pid is not None:
                result["app_cpu_us_per_request"] = round(statistics.median(app_only) * 1e6, 1)
    finally:
        if receiver is not None:
            receiver.close()
        if worker is not None:
            worker.send_signal(signal.SIGINT)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--profile", help="write a cProfile of one more round of the real app")
    parser.add_argument("--webhook", help="subscribe one webhook to these event types")
    parser.add_argument(
        "--item9-every",
        type=int,
        default=0,
        help="answer item 9 (opens an alert) in every N-th submission (0: never)",
    )
    parser.add_argument(
        "--worker-process",
        action="store_true",
        help="KAP_WORKER_EMBEDDED=false and `kap-outcomes worker` in a child process",
    )
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument(
        "--receiver-here",
        action="store_true",
        help="the webhook receiver in this process, rounds not waiting for deliveries",
    )
    args = parser.parse_args()
    clinician, admin = prepare(args.database_url, worker_process=args.worker_process)
    print(json.dumps(asyncio.run(main_async(args, clinician, admin)), indent=2))


if __name__ == "__main__":
    main()
