"""Tool installs the process tests reuse across runs: ``npm ci`` of a pinned lock file, the
Python client generator's venv. Each lives in a directory named after a hash of what it is
installed from (lock file, requirements, tool versions), outside the repository:
``$KAP_TEST_CACHE_DIR``, else ``$XDG_CACHE_HOME/kap-outcomes-tests``, else
``~/.cache/kap-outcomes-tests``. A changed lock file makes a new directory; a half-built one
(a run killed while installing) is built again. ``rm -rf`` of the directory is always safe.

What the tests prove is unchanged: the tools are the pinned ones, and every run still
generates, type-checks, installs and runs the clients from today's openapi/openapi.json.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path


def cache_root() -> Path:
    explicit = os.environ.get("KAP_TEST_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kap-outcomes-tests"


def cached(name: str, inputs: list[Path], extra: str, build: Callable[[Path], None]) -> Path:
    """The directory ``build`` filled from ``inputs`` (and ``extra``: tool versions), built
    once; concurrent runs (xdist workers, other checkouts) wait for each other on a lock."""
    digest = hashlib.sha256(extra.encode())
    for path in inputs:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    key = digest.hexdigest()[:16]
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{name}-{key}"
    complete = target / ".complete"
    with (root / f"{name}-{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not complete.exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            build(target)
            complete.touch()
    return target


def npm_modules(name: str, package: Path) -> Path:
    """``node_modules`` of ``package``'s lock file (``npm ci``), installed once per lock file
    and node version."""
    lock = [package / "package.json", package / "package-lock.json"]

    def install(target: Path) -> None:
        for path in lock:
            shutil.copy(path, target / path.name)
        _npm_ci(target)

    node = subprocess.run(
        ["node", "--version"], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    return cached(name, lock, node, install) / "node_modules"


def _npm_ci(target: Path) -> None:
    done = subprocess.run(
        ["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund"],
        cwd=target,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"npm ci failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
