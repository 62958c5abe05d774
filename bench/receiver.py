"""A webhook receiver for the benchmarks: notes when each event arrives (loopback only)."""

from __future__ import annotations

import json
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
