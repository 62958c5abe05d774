"""A webhook receiver for the benchmarks: notes when each event arrives (loopback only)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ArrivalLog:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}  # resource id -> time.monotonic() of arrival
        self.count = 0
        self.lock = threading.Lock()
        log = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                now = time.monotonic()
                resource = json.loads(body)["resource"]["id"]
                with log.lock:
                    log.count += 1
                    log.arrived.setdefault(resource, now)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


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
