"""New SQLite files already at head, for tests whose subject is not migrating.

Migrating a new file costs 0.3–0.7 s of CPU (Alembic's import, then every revision with its
batch table rebuilds), and a worker needs about a dozen such files: its session database,
the Schemathesis app's, the ones the process tests hand to ``serve``. The first is migrated
by the real migrations (`kap_outcomes.migrate.upgrade`), once per process; every other one
is a copy of it made with SQLite's backup API, the same pages (schema, ``alembic_version``,
the WAL mode in the header). The tests of migrating itself (``test_migrations.py``,
``test_schema_at_head.py``, ``test_server_process.py``, ``test_setup_race.py``,
``test_one_active_course.py``) migrate files of their own.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import sqlite3
import tempfile
from pathlib import Path

from kap_outcomes.migrate import upgrade


@functools.cache
def _head() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="kap-head-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # per process: no fixture
    path = folder / "head.db"
    upgrade(f"sqlite:///{path}")
    return path


def migrated_sqlite(path: Path) -> str:
    """The URL of a new SQLite file at ``path``, at head (a copy of this process's first)."""
    assert not path.exists(), f"{path} exists already"
    source, target = sqlite3.connect(_head()), sqlite3.connect(path)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return f"sqlite:///{path}"
