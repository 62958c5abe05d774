"""A bad setting is one line naming the variable and the expected form, a non-zero exit, and no
traceback (issue #10, requirement 7). Real `kap-outcomes` processes; runs once (SQLite)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PG_URL
from .processes import service_env

pytestmark = pytest.mark.skipif(bool(PG_URL), reason="settings, not the database: runs once")

COMMANDS = {
    "serve": ("serve", "--port", "1"),  # never binds: the settings are refused first
    "token create": ("token", "create", "--org", "demo", "--role", "admin"),
    "db upgrade": ("db", "upgrade"),
}


def _run(
    args: tuple[str, ...], tmp_path: Path, **settings: str
) -> subprocess.CompletedProcess[str]:
    env = service_env(f"sqlite:///{tmp_path / 'kap-outcomes.db'}")
    env.update(settings)
    return subprocess.run(
        [sys.executable, "-m", "kap_outcomes.cli", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _refusal(out: subprocess.CompletedProcess[str]) -> list[str]:
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert out.stdout == ""
    return out.stderr.strip().splitlines()


@pytest.mark.parametrize("command", COMMANDS)
def test_cors_origins_not_a_json_list(command: str, tmp_path: Path) -> None:
    # the example: the setting is a JSON list, a bare origin is refused
    out = _run(COMMANDS[command], tmp_path, KAP_CORS_ORIGINS="http://x")
    [line] = _refusal(out)
    assert line.startswith("KAP_CORS_ORIGINS: ")
    assert "JSON list" in line
    assert '["https://' in line  # shows the expected form
    assert not (tmp_path / "kap-outcomes.db").exists()  # nothing was done


def test_each_bad_variable_gets_its_line(tmp_path: Path) -> None:
    out = _run(
        COMMANDS["token create"],
        tmp_path,
        KAP_ENVIRONMENT="prod",
        KAP_DB_POOL_SIZE="0",
        KAP_RATE_LIMIT_PER_MINUTE="lots",
    )
    lines = _refusal(out)
    assert sorted(line.split(":")[0] for line in lines) == [
        "KAP_DB_POOL_SIZE",
        "KAP_ENVIRONMENT",
        "KAP_RATE_LIMIT_PER_MINUTE",
    ]
    by_variable = {line.split(":")[0]: line for line in lines}
    assert "production" in by_variable["KAP_ENVIRONMENT"]  # the allowed values
    assert "1" in by_variable["KAP_DB_POOL_SIZE"]  # the bound


def test_a_secret_setting_is_named_never_echoed(tmp_path: Path) -> None:
    out = _run(COMMANDS["serve"], tmp_path, KAP_SIGNING_KEY="too-short-Zq8")
    [line] = _refusal(out)
    assert line.startswith("KAP_SIGNING_KEY: ")
    assert "32" in line
    assert "too-short-Zq8" not in line


def test_a_signing_key_missing_in_production_is_one_line(tmp_path: Path) -> None:
    out = _run(COMMANDS["serve"], tmp_path, KAP_ENVIRONMENT="production")
    [line] = _refusal(out)
    assert line.startswith("KAP_SIGNING_KEY: ")


def test_a_database_url_that_is_not_one(tmp_path: Path) -> None:
    out = _run(COMMANDS["db upgrade"], tmp_path, KAP_DATABASE_URL="kap-outcomes.db")
    [line] = _refusal(out)
    assert line.startswith("KAP_DATABASE_URL: ")
    assert "sqlite:///" in line and "postgresql+psycopg://" in line
