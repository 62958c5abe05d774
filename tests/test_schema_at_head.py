"""`serve`, `token create` and /readyz check that the schema is at head (issue #10, req. 1).

On PostgreSQL a database that is behind is refused in one line naming `kap-outcomes db upgrade`
(releases migrate as a step of their own); on the embedded SQLite default `serve` migrates it.
Real processes against a throwaway database of the backend under test.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kap_outcomes.migrate import downgrade, upgrade

from .conftest import PG_URL
from .processes import (
    ServiceProcess,
    free_port,
    http_get,
    run_cli_together,
    service_env,
    throwaway_database,
)

UPGRADE_HINT = "kap-outcomes db upgrade"


@pytest.fixture
def fresh_url(tmp_path: Path) -> Iterator[str]:
    with throwaway_database(PG_URL, tmp_path) as url:
        yield url


def _cli(*args: str, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kap_outcomes.cli", *args],
        env=service_env(url),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _assert_refused_in_one_line(out: subprocess.CompletedProcess[str], *, is_at: str) -> None:
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert UPGRADE_HINT in lines[0]
    assert is_at in lines[0]
    assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.skipif(not PG_URL, reason="on SQLite `serve` and `token create` migrate")
def test_postgres_behind_head_is_refused_in_one_line(fresh_url: str, tmp_path: Path) -> None:
    token_create = ("token", "create", "--org", "demo", "--role", "admin")
    env = service_env(fresh_url)

    def both_refused(is_at: str) -> None:
        # `token create` and `serve` on the same database: processes of their own, at once
        refused = run_cli_together([(token_create, env, tmp_path), (("serve",), env, tmp_path)])
        for out in refused:
            _assert_refused_in_one_line(out, is_at=is_at)

    both_refused("empty")  # an empty database: nothing migrated yet

    # one migration behind (set up in this process: the commands under test are the others)
    upgrade(fresh_url)
    downgrade(fresh_url, "-1")
    both_refused("is at")

    # after `db upgrade` both work
    assert _cli("db", "upgrade", url=fresh_url, cwd=tmp_path).returncode == 0
    created = _cli(*token_create, url=fresh_url, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip().splitlines()[-1].startswith("kap_")


def test_readyz_is_503_while_the_schema_is_behind_head(fresh_url: str, tmp_path: Path) -> None:
    # the migrations run in this process: /readyz of the running server is under test
    if PG_URL:
        upgrade(fresh_url)
    server = ServiceProcess(service_env(fresh_url), tmp_path)  # on SQLite it migrates
    try:
        assert http_get(f"{server.base}/readyz").status_code == 200

        downgrade(fresh_url, "-1")
        behind = http_get(f"{server.base}/readyz")
        assert behind.status_code == 503
        assert behind.headers["content-type"] == "application/problem+json"
        problem = behind.json()
        assert problem["status"] == 503
        assert "schema" in problem["detail"]
        assert UPGRADE_HINT in problem["detail"]
        assert http_get(f"{server.base}/healthz").status_code == 200  # the process is up

        upgrade(fresh_url)
        assert http_get(f"{server.base}/readyz").status_code == 200
    finally:
        server.stop()


@pytest.mark.skipif(bool(PG_URL), reason="needs no database: runs once")
def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    nothing_listens = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/kap"
    env = service_env(nothing_listens)
    commands = [
        ("db", "upgrade"),
        ("token", "create", "--org", "demo", "--role", "admin"),
        ("serve", "--port", str(free_port())),
    ]
    # processes of their own, at once
    for out in run_cli_together([(args, env, tmp_path) for args in commands]):
        assert out.returncode == 1, out.stderr
        [line] = out.stderr.strip().splitlines()
        assert line.startswith("cannot reach the database of KAP_DATABASE_URL: ")
        assert "Traceback" not in out.stdout + out.stderr


def test_the_heads_read_from_the_files_are_alembics() -> None:
    # the schema checks read the revision files as text, not through Alembic
    from alembic.script import ScriptDirectory

    from kap_outcomes.migrate import alembic_config, head_revisions

    alembic = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert head_revisions() == frozenset(alembic.get_heads())


def test_a_new_revision_is_a_new_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two heads (a branch) and a merge of them, as Alembic writes them."""
    import shutil

    from kap_outcomes import migrate

    versions = tmp_path / "versions"
    shutil.copytree(migrate.migrations_dir() / "versions", versions)
    [head] = migrate.head_revisions()
    (versions / "x_branch.py").write_text(
        f'revision: str = "b1"\ndown_revision: str | None = "{head}"\n'
    )
    (versions / "y_branch.py").write_text(f'revision = "b2"\ndown_revision = "{head}"\n')
    monkeypatch.setattr(migrate, "migrations_dir", lambda: tmp_path)
    migrate.head_revisions.cache_clear()
    try:
        assert migrate.head_revisions() == {"b1", "b2"}
        (versions / "z_merge.py").write_text('revision = "m"\ndown_revision = ("b1", "b2")\n')
        migrate.head_revisions.cache_clear()
        assert migrate.head_revisions() == {"m"}
    finally:
        migrate.head_revisions.cache_clear()
