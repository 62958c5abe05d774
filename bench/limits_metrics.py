"""What the limits and the metrics add to one request, per call, in one process.

    .venv/bin/python -m bench.limits_metrics [--calls 100000] [--rounds 7] [--redis URL]

Each round times ``--calls`` calls of every line, one after the other; a line's figure is its
median over the rounds, in microseconds per call, and the median of its per-round ratio to
the baseline: the in-process window the service counts with (``RateWindow``). The Redis line
needs a Redis (a loopback one: one round trip per call, ``--calls``/50 calls).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage as AsyncMemoryStorage
from limits.aio.strategies import FixedWindowRateLimiter as AsyncFixedWindow
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from kap_outcomes.limiter import LocalBudget, RateWindow, SharedBudget, SharedStore
from kap_outcomes.metrics import ASSESSMENTS, RequestSeries

KEYS = [f"token-{n}" for n in range(50)]  # 50 tokens taking turns


def _sync(calls: int, fn: Callable[[int], object]) -> float:
    started = time.perf_counter()
    for n in range(calls):
        fn(n)
    return (time.perf_counter() - started) / calls * 1e6


async def _async(calls: int, fn: Callable[[int], Awaitable[object]]) -> float:
    started = time.perf_counter()
    for n in range(calls):
        await fn(n)
    return (time.perf_counter() - started) / calls * 1e6


async def main(calls: int, rounds: int, redis_url: str | None) -> None:
    big = 10**12  # never over the limit: the cost of counting
    window = RateWindow(big, 60.0)
    byte_keys = [k.encode() for k in KEYS]
    local = LocalBudget(big)
    item = RateLimitItemPerMinute(big)
    sync_limits = FixedWindowRateLimiter(MemoryStorage())
    async_limits = AsyncFixedWindow(AsyncMemoryStorage())
    series = RequestSeries()
    phq9 = ASSESSMENTS.labels("phq9")

    async def sync(fn: Callable[[int], object], n_calls: int = calls) -> float:
        return _sync(n_calls, fn)

    rows: list[tuple[str, Callable[[], Awaitable[float]]]] = [
        (
            "RateWindow.retry_after (baseline)",
            lambda: sync(lambda n: window.retry_after(byte_keys[n % 50], time.monotonic())),
        ),
        ("LocalBudget.take (awaited)", lambda: _async(calls, lambda n: local.take(KEYS[n % 50]))),
        (
            "limits: sync MemoryStorage, fixed window hit",
            lambda: sync(lambda n: sync_limits.hit(item, KEYS[n % 50])),
        ),
        (
            "limits: asyncio MemoryStorage, fixed window hit",
            lambda: _async(calls, lambda n: async_limits.hit(item, KEYS[n % 50])),
        ),
        (
            "metrics: request histogram observe (cached child)",
            lambda: sync(lambda n: series.observe("POST", "/v1/patients", 201, 0.0003)),
        ),
        (
            "metrics: counter inc through a partial",
            lambda: sync(lambda n: partial(phq9.inc, 1)()),
        ),
    ]
    store = None
    if redis_url:
        store = SharedStore(redis_url, f"bench-{uuid.uuid4().hex}")
        shared = SharedBudget(store, big, name="rate", fallback=None)
        n_redis = max(calls // 50, 500)
        rows.append(
            (
                "SharedBudget.take on Redis (loopback)",
                lambda: _async(n_redis, lambda n: shared.take(KEYS[n % 50])),
            )
        )
    micros: dict[str, list[float]] = {name: [] for name, _ in rows}
    ratios: dict[str, list[float]] = {name: [] for name, _ in rows}
    for _ in range(rounds):  # every row once per round: a busy moment hits them all alike
        measured = [(name, await measure()) for name, measure in rows]
        base = measured[0][1]
        for name, us in measured:
            micros[name].append(us)
            ratios[name].append(us / base)
    if store is not None:
        await store.close()
    width = max(len(name) for name, _ in rows)
    print(f"{'':{width}}  µs/call (median)  ratio to baseline (median of rounds)")
    for name, _ in rows:
        us, ratio = statistics.median(micros[name]), statistics.median(ratios[name])
        print(f"{name:{width}}  {us:16.2f}  {ratio:6.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--redis", default=None, help="e.g. redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.rounds, args.redis))
