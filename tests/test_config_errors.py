"""A bad setting is one line naming the variable and the expected form, a non-zero exit, and no
traceback (issue #10, requirement 7). Real `kap-outcomes` processes; runs once (SQLite).

Each case is a process of its own with an environment of its own; they do not depend on each
other, so the module starts them all at once and each test reads its own case's outcome.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import PG_URL
from .processes import run_cli_together, service_env

pytestmark = [
    pytest.mark.skipif(bool(PG_URL), reason="settings, not the database: runs once"),
    # one xdist worker runs the module: its module fixture starts every case's process
    pytest.mark.xdist_group("test_config_errors"),
]

COMMANDS = {
    "serve": ("serve", "--port", "1"),  # never binds: the settings are refused first
    "token create": ("token", "create", "--org", "demo", "--role", "admin"),
    "db upgrade": ("db", "upgrade"),
}

CASES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    **{
        f"cors {command}": (args, {"KAP_CORS_ORIGINS": "http://x"})
        for command, args in COMMANDS.items()
    },
    "each bad variable": (
        COMMANDS["token create"],
        {
            "KAP_ENVIRONMENT": "prod",
            "KAP_DB_POOL_SIZE": "0",
            "KAP_RATE_LIMIT_PER_MINUTE": "lots",
        },
    ),
    "secret": (COMMANDS["serve"], {"KAP_SIGNING_KEY": "too-short-Zq8"}),
    "no key in production": (COMMANDS["serve"], {"KAP_ENVIRONMENT": "production"}),
    "database url": (COMMANDS["db upgrade"], {"KAP_DATABASE_URL": "kap-outcomes.db"}),
}

Outcome = tuple[subprocess.CompletedProcess[str], Path]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every case run in a fresh directory of its own, all at the same time."""
    runs = []
    for name, (args, settings) in CASES.items():
        cwd = tmp_path_factory.mktemp(name.replace(" ", "-"))
        env = service_env(f"sqlite:///{cwd / 'kap-outcomes.db'}") | settings
        runs.append((args, env, cwd))
    done = run_cli_together(runs)
    return {name: (out, cwd) for name, out, (_, _, cwd) in zip(CASES, done, runs, strict=True)}


def _refusal(out: subprocess.CompletedProcess[str]) -> list[str]:
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert out.stdout == ""
    return out.stderr.strip().splitlines()


@pytest.mark.parametrize("command", COMMANDS)
def test_cors_origins_not_a_json_list(command: str, outcomes: dict[str, Outcome]) -> None:
    # the example: the setting is a JSON list, a bare origin is refused
    out, cwd = outcomes[f"cors {command}"]
    [line] = _refusal(out)
    assert line.startswith("KAP_CORS_ORIGINS: ")
    assert "JSON list" in line
    assert '["https://' in line  # shows the expected form
    assert not (cwd / "kap-outcomes.db").exists()  # nothing was done


def test_each_bad_variable_gets_its_line(outcomes: dict[str, Outcome]) -> None:
    lines = _refusal(outcomes["each bad variable"][0])
    assert sorted(line.split(":")[0] for line in lines) == [
        "KAP_DB_POOL_SIZE",
        "KAP_ENVIRONMENT",
        "KAP_RATE_LIMIT_PER_MINUTE",
    ]
    by_variable = {line.split(":")[0]: line for line in lines}
    assert "production" in by_variable["KAP_ENVIRONMENT"]  # the allowed values
    assert "1" in by_variable["KAP_DB_POOL_SIZE"]  # the bound


def test_a_secret_setting_is_named_never_echoed(outcomes: dict[str, Outcome]) -> None:
    [line] = _refusal(outcomes["secret"][0])
    assert line.startswith("KAP_SIGNING_KEY: ")
    assert "32" in line
    assert "too-short-Zq8" not in line


def test_a_signing_key_missing_in_production_is_one_line(outcomes: dict[str, Outcome]) -> None:
    [line] = _refusal(outcomes["no key in production"][0])
    assert line.startswith("KAP_SIGNING_KEY: ")


def test_a_database_url_that_is_not_one(outcomes: dict[str, Outcome]) -> None:
    [line] = _refusal(outcomes["database url"][0])
    assert line.startswith("KAP_DATABASE_URL: ")
    assert "sqlite:///" in line and "postgresql+psycopg://" in line
