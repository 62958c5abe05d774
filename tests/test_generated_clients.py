"""Clients generated from openapi/openapi.json work without hand edits (issue #10, req. 4).

- TypeScript: openapi-typescript + openapi-fetch, pinned in clients/typescript/package-lock.json;
  ``tsc --strict`` type-checks clients/typescript/flow.ts (create a patient, submit a PHQ-9,
  read the signals, read ``error.detail`` after ``if (error)``), which then runs against a live
  server.
- Python: openapi-python-client (clients/python/requirements.txt, in a venv of its own)
  generates without a single warning; its client runs clients/python/flow.py, the same flow,
  against the live server.

Once per suite run (not again on PostgreSQL: the database is not what this tests). Without
node and npm the TypeScript half is skipped locally and fails in CI (``CI=true``), where they
always are. The pinned tools (node_modules, the generator's venv) are installed once and
reused by later runs (tests/toolcache.py); generating, compiling, installing the generated
package and running both flows happen on every run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import ensure_organisation, issue_token
from kap_outcomes.db import Database, make_engine

from .conftest import PG_URL, ROOT
from .migrated import migrated_sqlite
from .processes import ServiceProcess, service_env
from .toolcache import cached, npm_modules

pytestmark = [
    pytest.mark.skipif(bool(PG_URL), reason="runs once, on the SQLite pass"),
    # one xdist worker runs the module: its module fixture starts the processes once
    pytest.mark.xdist_group("test_generated_clients"),
]

SPEC = ROOT / "openapi" / "openapi.json"
CLIENTS = ROOT / "clients"


def _run(*args: str | Path, cwd: Path, timeout: float = 600) -> str:
    out = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert out.returncode == 0, f"{args} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return out.stdout + out.stderr


def _require(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        message = f"{', '.join(missing)} not found"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: CI must have them")
        pytest.skip(message)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real server process on 127.0.0.1 with a database of its own, and a clinician token."""
    workdir = tmp_path_factory.mktemp("clients-server")
    url = migrated_sqlite(workdir / "clients.db")
    db = Database(make_engine(url))

    def create(conn: Any) -> str:
        org_id = ensure_organisation(conn, "generated-clients")
        return issue_token(conn, organisation_id=org_id, role=Role.clinician)[1]

    token = db.run_write(create)
    db.dispose()
    server = ServiceProcess(service_env(url), workdir)
    try:
        yield server.base, token
    finally:
        server.stop()


def _check_flow(said: list[str]) -> None:
    """What the flow must have seen: PHQ-9 1,2,1,0,1,2,1,0,0 is 8, mild (Kroenke 2001: 5-9),
    and an unknown patient is a 404 problem whose detail the client could read."""
    assert said[0].startswith("patient ")
    assert said[1] == "phq9 total 8 severity mild"
    assert said[2].startswith("booster ")
    assert said[3].startswith("problem 404 ") and len(said[3]) > len("problem 404 ")


def test_typescript_client_type_checks_strictly_and_runs(
    tmp_path: Path, live: tuple[str, str]
) -> None:
    _require("node", "npm")
    work = tmp_path / "typescript"
    work.mkdir()
    for name in ("package.json", "package-lock.json", "tsconfig.json", "flow.ts"):
        shutil.copy(CLIENTS / "typescript" / name, work / name)
    (work / "node_modules").symlink_to(
        npm_modules("typescript-client", CLIENTS / "typescript"), target_is_directory=True
    )
    bin_dir = work / "node_modules" / ".bin"
    _run(
        bin_dir / "openapi-typescript",
        SPEC,
        "--default-non-nullable",
        "false",
        "--output",
        work / "generated" / "schema.d.ts",
        cwd=work,
    )
    # one compiler run: it type-checks strictly (any error fails it) and writes the JS to run
    _run(bin_dir / "tsc", "--strict", "-p", ".", cwd=work)
    out = _run("node", work / "dist" / "flow.js", *live, cwd=work, timeout=60)
    _check_flow(json.loads(out.strip().splitlines()[-1]))


def _pip(python: Path, *args: str | Path, cwd: Path) -> str:
    """This venv's pip, run for another interpreter (``pip --python``): the venvs here need
    no pip of their own, which spares a pip bootstrap per venv."""
    return _run(sys.executable, "-m", "pip", "--python", python, *args, cwd=cwd)


def _generator() -> Path:
    """A venv with clients/python/requirements.txt (the generator and what the generated
    client needs at run time) and setuptools (which builds the generated package), installed
    once (tests/toolcache.py)."""
    requirements = CLIENTS / "python" / "requirements.txt"

    def install(target: Path) -> None:
        venv.create(target, with_pip=False)
        python = target / "bin" / "python"
        _pip(python, "install", "--quiet", "-r", requirements, "setuptools", cwd=target)

    return cached("python-client", [requirements], f"{sys.version} setuptools", install)


def _site_packages(env_dir: Path) -> Path:
    (found,) = env_dir.glob("lib/python*/site-packages")
    return found


def test_python_client_generates_without_warnings_and_runs(
    tmp_path: Path, live: tuple[str, str]
) -> None:
    tools = _generator()
    generated = tmp_path / "generated"
    generated.mkdir()
    out = _run(
        tools / "bin" / "openapi-python-client",
        "generate",
        "--path",
        SPEC,
        "--config",
        CLIENTS / "python" / "config.yaml",
        "--meta",
        "setup",
        cwd=generated,
    )
    assert "Warning" not in out and "warning" not in out, out
    # the generated package is installed by pip into a venv of this test's own, which sees the
    # generator's packages (a .pth line) and nothing of the project's venv
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    (_site_packages(env_dir) / "generator.pth").write_text(f"{_site_packages(tools)}\n")
    python = env_dir / "bin" / "python"
    package = generated / "kap-outcomes-client"
    _pip(python, "install", "--quiet", "--no-build-isolation", package, cwd=tmp_path)
    said = _run(python, CLIENTS / "python" / "flow.py", *live, cwd=tmp_path, timeout=60)
    _check_flow(json.loads(said.strip().splitlines()[-1]))
