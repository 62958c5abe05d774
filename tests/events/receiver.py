"""A real HTTP receiver for webhook deliveries, on 127.0.0.1 (tests call loopback only)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook

from ..processes import serve_in_thread


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


class Receiver:
    """Answers each POST as ``respond(n)`` says (n counts from 1): a status code, or a
    ``(seconds, status)`` pair to answer late. Records every request."""

    def __init__(self, respond: Callable[[int], Any] | None = None) -> None:
        self.respond = respond or (lambda n: 200)
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                if len(body) < length:  # the sender died mid-request: nothing was delivered
                    self.close_connection = True
                    return
                with receiver._lock:
                    number = len(receiver.received) + 1
                    answer = receiver.respond(number)
                    delay, status = answer if isinstance(answer, tuple) else (0, answer)
                    receiver.received.append(
                        Received(
                            self.path, {k.lower(): v for k, v in self.headers.items()}, body, status
                        )
                    )
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    if 300 <= status < 400:
                        self.send_header("Location", f"http://127.0.0.1:{receiver.port}/elsewhere")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the sender gave up (a timeout test)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default 5 resets connections of a busy worker

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = serve_in_thread(self.server)

    def bodies(self) -> list[bytes]:
        with self._lock:
            return [r.body for r in self.received]

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """Every delivery, verified with the Standard Webhooks reference verifier."""
        with self._lock:
            received = list(self.received)
        return [Webhook(secret).verify(r.body, r.headers) for r in received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
