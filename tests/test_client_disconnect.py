"""A client that goes away mid-request is one quiet access-log line (status 499), never a
500, an error line or a traceback. Load tools that give up on slow answers do this by the
thousand; a log full of false crashes hides the real ones."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from .migrated import migrated_sqlite
from .processes import ServiceProcess, issue_token, service_env, wait_for


def _send_and_leave(port: int, request: bytes, linger: float) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(request)
        time.sleep(linger)


def test_a_client_that_leaves_mid_request_is_one_quiet_line(tmp_path: Path) -> None:
    url = migrated_sqlite(tmp_path / "kap.db")
    server = ServiceProcess(service_env(url), tmp_path)
    try:
        auth = f"Authorization: Bearer {issue_token(url, 'c')}\r\n".encode()
        # half a body, then gone
        _send_and_leave(
            server.port,
            b"POST /v1/patients HTTP/1.1\r\nHost: t\r\n" + auth
            + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"exte",
            0.3,
        )  # fmt: skip
        # a whole request, gone before the answer
        for path in (b"/v1/caseload", b"/v1/patients"):
            _send_and_leave(
                server.port, b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n" + auth + b"\r\n", 0
            )
        # the access line of each of the three requests (each request's own errors, if it
        # had any, come before it)
        wait_for(
            lambda: all(
                line in server.log()
                for line in (
                    '"method":"POST","route":"-","status":499',
                    '"route":"/v1/caseload"',
                    '"route":"/v1/patients"',
                )
            ),
            timeout=30,
            what="the access lines",
        )
    finally:
        server.stop()
    log = server.log()
    assert '"method":"POST","route":"-","status":499' in log, log
    assert "Traceback" not in log and "unhandled error" not in log, log
    assert '"status":500' not in log, log
