"""`kap-outcomes db backup PATH`: an online copy of a SQLite database while it is written.

Client threads stream PHQ-9 submissions at a real server process on a SQLite file; while they
do, the database is backed up (in many small steps, so that writes land between the steps)
and the copy is restored as a fresh database. Every assessment acknowledged before the backup
began must be in it, and its schema must be exactly the migrations' (`alembic check`).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kap_outcomes.backup import backup

from .conftest import ROOT
from .migrated import migrated_sqlite
from .processes import ServiceProcess, http_client, http_post, issue_token, service_env, wait_for
from .test_server_process import _cli

CLIENTS = 4
ACKED_BEFORE_BACKUP = 500
"""Acknowledged writes before the backup begins: a few hundred pages, copied a page a step."""


def _writer(base: str, headers: dict[str, str], patient: str, acked: list, stop) -> None:
    body = {"instrument": "phq9", "items": [1, 2, 1, 0, 1, 2, 1, 0, 0],
            "administered_at": "2026-03-02T15:04:05Z"}  # fmt: skip
    with http_client(base_url=base, headers=headers, timeout=20) as http:
        while not stop.is_set():
            resp = http.post(f"/v1/patients/{patient}/assessments", json=body)
            assert resp.status_code == 201, resp.text
            acked.append((time.monotonic(), resp.json()["id"]))  # list.append is atomic


def test_a_backup_taken_under_writes_holds_every_acknowledged_write(tmp_path: Path) -> None:
    live = tmp_path / "live.db"
    env = service_env(migrated_sqlite(live))
    server = ServiceProcess(env, tmp_path)
    headers = {"Authorization": f"Bearer {issue_token(env['KAP_DATABASE_URL'], 'c')}"}
    acked: list[tuple[float, str]] = []
    stop = threading.Event()
    try:
        patient = http_post(
            f"{server.base}/v1/patients", json={"external_id": "b-1"}, headers=headers
        ).json()["id"]
        threads = [
            threading.Thread(target=_writer, args=(server.base, headers, patient, acked, stop))
            for _ in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        wait_for(
            lambda: len(acked) > ACKED_BEFORE_BACKUP,
            timeout=120,
            what=f"{ACKED_BEFORE_BACKUP} acknowledged writes",
        )

        began = time.monotonic()
        copy = tmp_path / "backup.db"
        # a page a step, 2 ms apart: the copy of a few hundred pages spans about a second, as
        # a large database's would (unpaused it takes ~30 ms, too short a window to be sure
        # that a write lands in it on a busy machine)
        pages = backup(env["KAP_DATABASE_URL"], copy, pages_per_step=1, pause_between_steps=0.002)
        ended = time.monotonic()
        time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        stop.set()
        server.stop()
    assert pages > 50  # many steps of a page each
    during = [i for at, i in acked if began < at < ended]
    assert during, "no write was acknowledged while the backup ran: not an online backup"

    restored = tmp_path / "restored" / "kap.db"
    restored.parent.mkdir()
    shutil.copyfile(copy, restored)
    with sqlite3.connect(restored) as conn:
        stored = {row[0] for row in conn.execute("SELECT id FROM assessments")}
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    before = {i for at, i in acked if at < began}
    assert before - stored == set(), f"{len(before - stored)} acknowledged writes missing"
    assert len(stored) < len(acked)  # a snapshot, not the end state

    check = subprocess.run(
        [sys.executable, "-m", "alembic", "check"],
        env=service_env(f"sqlite:///{restored}"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr


def test_the_command_copies_and_never_overwrites(tmp_path: Path) -> None:
    env = service_env(migrated_sqlite(tmp_path / "live.db"))  # the command under test: backup
    out = _cli("db", "backup", str(tmp_path / "one.db"), env=env, cwd=tmp_path)
    assert out.startswith("backed up ") and (tmp_path / "one.db").is_file()
    with sqlite3.connect(tmp_path / "one.db") as conn:
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
    again = subprocess.run(
        [sys.executable, "-m", "kap_outcomes.cli", "db", "backup", str(tmp_path / "one.db")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 1 and "never overwritten" in again.stderr
    assert "Traceback" not in again.stderr


@pytest.mark.parametrize("url", ["postgresql+psycopg://kap:s3cret-pw@db.internal:5432/kap"])
def test_postgresql_is_pointed_at_pg_dump(tmp_path: Path, url: str) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "kap_outcomes.cli", "db", "backup", str(tmp_path / "x.db")],
        env=service_env(url), cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "pg_dump" in refused.stderr and "s3cret-pw" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.db").exists()
