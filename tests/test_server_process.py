"""The real server process: the README's start command, and data surviving a restart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PG_URL
from .processes import ServiceProcess, http_get, http_post


def _cli(*args: str, env: dict[str, str], cwd: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "kap_outcomes.cli", *args],
        env=env,
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout


@pytest.mark.skipif(bool(PG_URL), reason="the embedded default is SQLite")
def test_fresh_directory_serve_creates_database_and_data_survives_restart(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAP_")}
    # the default: a SQLite file in the working directory, created and migrated by `serve`
    token = (
        _cli("token", "create", "--org", "clinic", "--role", "clinician", env=env, cwd=tmp_path)
        .strip()
        .splitlines()[-1]
    )
    assert (tmp_path / "kap-outcomes.db").exists()
    headers = {"Authorization": f"Bearer {token}"}

    server = ServiceProcess(env, tmp_path)
    try:
        pid = http_post(
            f"{server.base}/v1/patients", json={"external_id": "p-1"}, headers=headers
        ).json()["id"]
        created = http_post(
            f"{server.base}/v1/patients/{pid}/assessments",
            json={
                "instrument": "phq9",
                "items": [3, 3, 2, 2, 2, 2, 2, 2, 0],
                "administered_at": "2026-03-02T15:04:05Z",
            },
            headers=headers,
        )
        assert created.status_code == 201
    finally:
        server.stop()

    server = ServiceProcess(env, tmp_path)
    try:
        got = http_get(f"{server.base}/v1/assessments/{created.json()['id']}", headers=headers)
        assert got.status_code == 200
        assert got.json()["total"] == 18
        assert got.json()["severity"] == "moderately_severe"
    finally:
        server.stop()
