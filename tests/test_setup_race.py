"""Setup that cannot race: `serve`, `token create` and `db upgrade` started at the same moment
on a new database end with one correct schema at head (issue #10, requirement 1).

Real processes on a fresh SQLite file, or on a fresh PostgreSQL database when the suite runs on
PostgreSQL (the database is what this tests, so it runs once per backend).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from kap_outcomes.migrate import alembic_config

from .conftest import PG_URL
from .processes import free_port, http_client, service_env, throwaway_database, wait_for

PROCESSES = 6


@pytest.fixture
def fresh_url(tmp_path: Path) -> Iterator[str]:
    with throwaway_database(PG_URL, tmp_path) as url:
        yield url


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "kap_outcomes.cli", *args]


def _serving(http: httpx.Client, port: int, proc: subprocess.Popen[bytes], log: Path) -> bool:
    assert proc.poll() is None, log.read_text(errors="replace")
    try:
        return http.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def _assert_one_schema_at_head(url: str) -> None:
    config = alembic_config(url)
    head = ScriptDirectory.from_config(config).get_current_head()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert [v for (v,) in versions] == [head]
    assert {"organisations", "api_tokens", "patients", "assessments", "alerts"} <= tables
    command.check(config)  # `alembic check`: the schema matches the models, nothing to generate


def test_processes_started_together_on_a_new_database_end_with_one_schema(
    fresh_url: str, tmp_path: Path
) -> None:
    env = service_env(fresh_url)
    ports = [free_port(), free_port()]
    commands = [
        _cli("db", "upgrade"),
        _cli("token", "create", "--org", "demo", "--role", "admin"),
        _cli("serve", "--port", str(ports[0])),
        _cli("db", "upgrade"),
        _cli("token", "create", "--org", "demo", "--role", "clinician"),
        _cli("serve", "--port", str(ports[1])),
    ]
    if PG_URL:  # where only `db upgrade` migrates, more of them
        commands[4] = commands[5] = _cli("db", "upgrade")
    assert len(commands) == PROCESSES
    logs = [tmp_path / f"process-{i}.log" for i in range(PROCESSES)]
    procs = []
    for cmd, log in zip(commands, logs, strict=True):
        with log.open("wb") as out:
            procs.append(
                subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
            )
    try:
        one_shots = [p for p, c in zip(procs, commands, strict=True) if "serve" not in c]
        for proc in one_shots:
            proc.wait(timeout=120)
        outputs = [log.read_text(errors="replace") for log in logs]
        if PG_URL:
            # On PostgreSQL only `db upgrade` migrates; `serve` and `token create` either find
            # the schema at head or refuse in one line (tests/test_schema_at_head.py).
            for proc, cmd, out in zip(procs, commands, outputs, strict=True):
                if cmd[3:5] == ["db", "upgrade"]:
                    assert proc.returncode == 0, out
                elif proc.poll() is not None and proc.returncode != 0:
                    assert "Traceback" not in out, out
                    assert "kap-outcomes db upgrade" in out, out
        else:
            for proc, cmd, out in zip(procs, commands, outputs, strict=True):
                if "serve" not in cmd:
                    assert proc.returncode == 0, out
            # one client for all the polls (a client per poll costs ~20 ms of CPU)
            with http_client(timeout=5) as http:
                for port, proc, log in (
                    (ports[0], procs[2], logs[2]),
                    (ports[1], procs[5], logs[5]),
                ):
                    wait_for(
                        lambda port=port, proc=proc, log=log: _serving(http, port, proc, log),
                        timeout=60,
                        what=f"serve on port {port}",
                    )
            for out in outputs:
                assert "Traceback" not in out, out
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=15)
    _assert_one_schema_at_head(fresh_url)
