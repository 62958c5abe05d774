"""Real processes for the resilience tests: the service (`kap-outcomes serve`), one-shot
`kap-outcomes` commands (several at once where they do not depend on each other), and a
throwaway PostgreSQL cluster of a test's own, which a test may stop and start at will."""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

PG_BIN = Path(os.environ.get("KAP_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, step: float = 0.05) -> Any:
    """Poll until ``predicate()`` is truthy and return it; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


@functools.cache
def _tls() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def http_client(**kwargs: Any) -> httpx.Client:
    """``httpx.Client(**kwargs)`` sharing the suite's one TLS context: httpx builds one for
    every client (loading its CA bundle: ~60 ms of CPU each, some 11 s over a run); these
    clients speak plain HTTP to 127.0.0.1."""
    return httpx.Client(verify=_tls(), **kwargs)


def http_get(url: str, **kwargs: Any) -> httpx.Response:
    """``httpx.get`` through `http_client`."""
    with http_client() as client:
        return client.get(url, **kwargs)


def http_post(url: str, **kwargs: Any) -> httpx.Response:
    """``httpx.post`` through `http_client`."""
    with http_client() as client:
        return client.post(url, **kwargs)


def serve_in_thread(server: socketserver.BaseServer) -> threading.Thread:
    """``server.serve_forever()`` in a daemon thread, started. It looks for a shutdown every
    50 ms: at the default 0.5 s each receiver's ``shutdown()`` in a test's teardown waited
    about half a second."""
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return thread


REDIS_URL = os.environ.get("KAP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
"""The machine's Redis, shared with other test runs: use a key prefix of the test's own."""


def redis_answers(url: str) -> bool:
    import redis

    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def service_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAP_")}
    env["KAP_DATABASE_URL"] = database_url
    # streams of requests from one token and one address: no abuse limits in these tests
    env["KAP_RATE_LIMIT_PER_MINUTE"] = "0"
    env["KAP_FAILED_AUTH_PER_MINUTE"] = "0"
    return env


KAP_CLI = (sys.executable, "-m", "kap_outcomes.cli")
"""The `kap-outcomes` command, as a fresh interpreter runs it."""


def start_cli(args: Sequence[str], *, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """``kap-outcomes ARGS`` started, its stdout and stderr kept apart (read by `finish`)."""
    return subprocess.Popen(
        [*KAP_CLI, *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(
    proc: subprocess.Popen[str], *, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Wait for a command `start_cli` started; what `subprocess.run` would have returned."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_cli_together(
    runs: Sequence[tuple[Sequence[str], dict[str, str], Path]], *, timeout: float = 120
) -> list[subprocess.CompletedProcess[str]]:
    """Several independent ``kap-outcomes`` commands (args, env, cwd) run at the same time,
    each a process of its own: the wall time of the slowest, not of the sum. In order."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for args, env, cwd in runs:
            procs.append(start_cli(args, env=env, cwd=cwd))
        return [finish(proc, timeout=timeout) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def issue_token(database_url: str, org: str, role: str = "clinician") -> str:
    """A token issued straight into a migrated database (what `token create` does, without
    a process of its own: for tests whose subject is not that command)."""
    from kap_outcomes.auth.models import Role
    from kap_outcomes.auth.service import ensure_organisation
    from kap_outcomes.auth.service import issue_token as issue
    from kap_outcomes.db import Database, make_engine

    db = Database(make_engine(database_url))
    try:
        return db.run_write(
            lambda conn: issue(
                conn, organisation_id=ensure_organisation(conn, org), role=Role(role)
            )[1]
        )
    finally:
        db.dispose()


class ServiceProcess:
    """``python -m kap_outcomes.cli serve`` on a free port, its output in a log file."""

    def __init__(
        self,
        env: dict[str, str],
        cwd: Path,
        *,
        ready_timeout: float = 120,  # a hang detector: a start takes ~2 s of CPU, far more wall
        # time on a machine that runs several suites at once
        port: int | None = None,
        workers: int = 1,
        ready: bool = True,
    ) -> None:
        """Started, and (unless ``ready=False``: then the caller does other work meanwhile
        and calls `wait_ready` itself) answering ``/readyz``."""
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / f"serve-{self.port}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        # one client for every readiness poll: httpx.get makes a client (and its TLS context)
        # per call, some 20 ms of CPU each, 20 times a second while the service starts
        self._probe = http_client(timeout=2)
        argv = [sys.executable, "-m", "kap_outcomes.cli", "serve", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*argv, "--workers", str(workers)] if workers > 1 else argv,
            env=env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        if not ready:
            return
        try:
            self.wait_ready(timeout=ready_timeout)
        except BaseException:
            self.stop(signal.SIGKILL)
            raise

    def wait_ready(self, *, timeout: float = 90) -> None:
        """Until /readyz is 200; fails the test if the process exits meanwhile."""
        wait_for(self._ready, timeout=timeout, what="the service to become ready")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"the service exited with {self.proc.returncode}:\n{self.output()}")
        try:
            return self._probe.get(f"{self.base}/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self, *, since: int = 0) -> str:
        """The end of what the process wrote (after the first ``since`` characters)."""
        return self.log(since=since)[-4000:]

    def log(self, *, since: int = 0) -> str:
        """Everything the process wrote (after the first ``since`` characters)."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[since:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self._probe.close()


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temporary directory on a free port: initdb, pg_ctl start/stop.

    initdb refuses to run as root, so as root every command runs as the ``postgres`` system
    user (``runuser``) on a data directory it owns. Nothing outside the directory is touched.
    """

    def __init__(self) -> None:
        for tool in ("initdb", "pg_ctl"):
            if not (PG_BIN / tool).is_file():
                pytest.skip(f"PostgreSQL server binaries not found ({PG_BIN / tool} is missing)")
        self._prefix: list[str] = []
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                pytest.skip("running as root and runuser is missing (initdb refuses root)")
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no 'postgres' user for initdb")
            self._prefix = ["runuser", "-u", "postgres", "--"]
        # /tmp, not pytest's tmp_path: the postgres user must be able to reach the directory
        self.root = Path(tempfile.mkdtemp(prefix="kap-pg-"))
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.data = self.root / "data"
        self.logfile = self.root / "server.log"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            timeout=120,
        )

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        out = subprocess.run(
            [*self._prefix, str(PG_BIN / tool), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            check=False,
        )
        if out.returncode != 0:
            log = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
            raise RuntimeError(f"{tool} failed ({out.returncode}): {out.stderr}\n{log}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c max_connections=50"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-o", options, "-w", "start"
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def restore(self) -> None:
        """Running and answering again, whatever a test left it in (stopped, frozen)."""
        if getattr(self, "_frozen", False):
            self.thaw()
        if not (self.data / "postmaster.pid").exists():
            self.start()

    def _processes(self) -> list[int]:
        """The postmaster, then its children (backends, checkpointer, walwriter …)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the process ended meanwhile
            if int(fields[1]) == postmaster:
                children.append(int(stat.parent.name))
        return [postmaster, *children]

    def freeze(self) -> None:
        """SIGSTOP the whole cluster: connections stay open and nothing answers (a hung or
        failing-over server), unlike a stop, which refuses connections at once."""
        for pid in self._processes():
            with contextlib.suppress(ProcessLookupError):  # a backend that just exited
                os.kill(pid, signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        for pid in self._processes():
            with contextlib.suppress(ProcessLookupError):  # a backend that just exited
                os.kill(pid, signal.SIGCONT)
        self._frozen = False

    def destroy(self) -> None:
        if getattr(self, "_frozen", False):
            self.thaw()
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def throwaway_database(pg_url: str | None, tmp_path: Path) -> Iterator[str]:
    """A database of the backend under test that does not exist yet (a SQLite file in
    ``tmp_path``) or is empty (a PostgreSQL database beside ``pg_url``, dropped afterwards)."""
    if not pg_url:
        yield f"sqlite:///{tmp_path / 'kap-outcomes.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"kap_scratch_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
