"""A webhook receiver for the benchmarks: notes when each event arrives (loopback only)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time

import orjson
from aiohttp import web


class ArrivalLog:
    """An aiohttp server on its own event loop in a thread (C-parsed HTTP: far less CPU per
    delivery than ``http.server``, which matters on a 2-core machine where the receiver
    shares the cores with the server it measures)."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}  # resource id -> time.monotonic() of arrival
        self.count = 0
        self.lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        started = threading.Event()
        port: list[int] = []

        async def receive(request: web.Request) -> web.Response:
            body = await request.read()
            now = time.monotonic()
            resource = orjson.loads(body)["resource"]["id"]
            with self.lock:
                self.count += 1
                self.arrived.setdefault(resource, now)
            return web.Response(status=204)

        async def start() -> None:
            app = web.Application()
            app.router.add_post("/hook", receive)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=256)
            await site.start()
            port.append(self._runner.addresses[0][1])

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(start())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        started.wait(30)
        self.url = f"http://127.0.0.1:{port[0]}/hook"

    def close(self) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class ReceiverProcess:
    """An ``ArrivalLog`` in a child process, so that its CPU is not counted with the sender's
    (``bench.ingest_cpu``): ``count`` asks it how many deliveries arrived."""

    def __init__(self) -> None:
        self._child = subprocess.Popen(
            [sys.executable, "-m", "bench.receiver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._child.stdin is not None and self._child.stdout is not None
        self._in, self._out = self._child.stdin, self._child.stdout
        self.url = self._out.readline().strip()

    @property
    def count(self) -> int:
        self._in.write("count\n")
        self._in.flush()
        return int(self._out.readline())

    def close(self) -> None:
        self._in.close()
        self._child.wait(timeout=10)


def _serve() -> None:
    log = ArrivalLog()
    print(log.url, flush=True)
    for _ in sys.stdin:  # one line per question; EOF ends it
        with log.lock:
            count = log.count
        print(count, flush=True)
    log.close()


if __name__ == "__main__":
    _serve()
