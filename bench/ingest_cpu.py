"""CPU time per PHQ-9 ingest, in-process, against the database-free baseline: a figure that
depends far less on how busy the machine is than requests per second do.

Both apps are driven through ASGI in this process (no sockets, no HTTP parsing: that part is
the same for both and measured by ``ingest.py``), 16 requests in flight at a time, so the real
app's group commit batches as it does under wrk. The figure is CPU seconds of this process
(every thread: the event loop, the commit thread, the embedded worker) per request.

    python -m bench.ingest_cpu [--requests 3000] [--rounds 5] [--profile out.prof]
                               [--webhook TYPES]

``--profile`` writes a cProfile of one extra round of the real app (``python -m pstats``,
or ``snakeviz``) to attribute the cost by layer. ``--webhook assessment.submitted`` subscribes
one webhook; its receiver runs in a child process (its CPU is not the server's), and a round
of the real app lasts until every delivery its requests caused has arrived, so the figure
is the CPU of a request and of its delivery (``--receiver-here`` keeps the receiver in this
process and the round ends with its last request, as the harness did before).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from bench.ingest import BODY
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


async def load(
    app: App,
    path: str,
    headers: dict[str, str],
    n: int,
    concurrency: int,
    arrived: Callable[[], bool] | None = None,
) -> float:
    """CPU seconds per request over ``n`` requests, ``concurrency`` in flight (and, with
    ``arrived``, until it says that every delivery has arrived)."""
    body = orjson.dumps(BODY)
    left = n

    async def client() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            status, answer = await call(app, "POST", path, body, headers)
            if status != 201:
                raise RuntimeError(f"{status}: {answer[:300]!r}")

    started = time.process_time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    if arrived is not None:
        deadline = time.monotonic() + 60
        while not arrived() and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a child
            await asyncio.sleep(0.01)
    return (time.process_time() - started) / n


def prepare(database_url: str | None) -> tuple[str, str]:
    """A migrated database and two tokens of one organisation (clinician, admin)."""
    work = Path(tempfile.mkdtemp(prefix="kap-bench-cpu-"))
    os.environ["KAP_DATABASE_URL"] = database_url or f"sqlite:///{work / 'bench.db'}"
    os.environ["KAP_RATE_LIMIT_PER_MINUTE"] = str(10**9)
    os.environ["KAP_WEBHOOK_ALLOWED_NETWORKS"] = '["127.0.0.0/8"]'
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
    sent = 0  # requests to the real app, each one delivery

    def arrived() -> bool:
        return receiver is None or receiver.count >= sent

    wait = None if args.receiver_here else arrived
    async with app.router.lifespan_context(app), baseline.router.lifespan_context(baseline):
        if args.webhook:
            receiver = ArrivalLog() if args.receiver_here else ReceiverProcess()
            hook = orjson.dumps({"url": receiver.url, "event_types": args.webhook.split(",")})
            as_admin = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}
            status, answer = await call(app, "POST", "/v1/webhooks", hook, as_admin)
            assert status == 201, answer
        status, answer = await call(
            app, "POST", "/v1/patients", orjson.dumps({"external_id": "cpu-1"}), headers
        )
        assert status == 201, answer
        path = f"/v1/patients/{orjson.loads(answer)['id']}/assessments"
        sent += 300
        await load(app, path, headers, 300, args.concurrency, wait)  # warm up both
        await load(baseline, path, headers, 300, args.concurrency)
        real: list[float] = []
        base: list[float] = []
        for i in range(args.rounds):
            pair = [(baseline, base), (app, real)]
            for target, into in pair if i % 2 else reversed(pair):
                if target is app:
                    sent += args.requests
                into.append(
                    await load(
                        target,
                        path,
                        headers,
                        args.requests,
                        args.concurrency,
                        wait if target is app else None,
                    )
                )
            print(
                f"round {i + 1}: real {real[-1] * 1e6:,.0f} µs, baseline {base[-1] * 1e6:,.0f} µs",
                file=sys.stderr,
                flush=True,
            )
        if args.profile:
            profiler = cProfile.Profile(time.thread_time)  # CPU of the loop thread
            profiler.enable()
            sent += args.requests
            await load(app, path, headers, args.requests, args.concurrency, wait)
            profiler.disable()
            profiler.dump_stats(args.profile)
        await asyncio.sleep(1.0)  # deliveries under way
        real_us, base_us = statistics.median(real) * 1e6, statistics.median(base) * 1e6
        result = {
            "real_cpu_us_per_request": round(real_us, 1),
            "baseline_cpu_us_per_request": round(base_us, 1),
            "ratio": round(base_us / real_us, 3),
            "rounds": args.rounds,
            "requests": args.requests,
            "webhook": args.webhook,
            "deliveries_received": receiver.count if receiver else None,
        }
    if receiver is not None:
        receiver.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--profile", help="write a cProfile of one more round of the real app")
    parser.add_argument("--webhook", help="subscribe one webhook to these event types")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument(
        "--receiver-here",
        action="store_true",
        help="the webhook receiver in this process, rounds not waiting for deliveries",
    )
    args = parser.parse_args()
    clinician, admin = prepare(args.database_url)
    print(json.dumps(asyncio.run(main_async(args, clinician, admin)), indent=2))


if __name__ == "__main__":
    main()
