"""A client that goes away mid-request is one quiet access-log line (status 499), never a
500, an error line or a traceback. Load tools that give up on slow answers do this by the
thousand; a log full of false crashes hides the real ones."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from .processes import ServiceProcess, service_env, wait_for
from .test_server_process import _cli


def _send_and_leave(port: int, request: bytes, linger: float) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(request)
        time.sleep(linger)


def test_a_client_that_leaves_mid_request_is_one_quiet_line(tmp_path: Path) -> None:
    env = service_env(f"sqlite:///{tmp_path / 'kap.db'}")
    token = _cli("token", "create", "--org", "c", "--role", "clinician", env=env, cwd=tmp_path)
    auth = f"Authorization: Bearer {token.strip().splitlines()[-1]}\r\n".encode()
    server = ServiceProcess(env, tmp_path)
    try:
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
        wait_for(
            lambda: (
                server.output().count('"route":"/v1/patients"') >= 1
                and '"status":499' in server.output()
            ),
            timeout=10,
            what="the access lines",
        )
        time.sleep(0.5)
    finally:
        server.stop()
    log = server.output()
    assert '"method":"POST","route":"-","status":499' in log, log
    assert "Traceback" not in log and "unhandled error" not in log, log
    assert '"status":500' not in log, log
