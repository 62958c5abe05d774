"""New SQLite files already at head, for tests whose subject is not migrating.

Migrating a new file costs 0.3–0.7 s of CPU (Alembic's import, then every revision with its
batch table rebuilds), and a worker needs about a dozen such files: its session database,
the Schemathesis app's, the ones the process tests hand to ``serve``. The first is migrated
by the real migrations (`kap_outcomes.migrate.upgrade`), once per process; every other one
is a copy of it made as ``kap-outcomes db backup`` makes one (`kap_outcomes.backup.backup`:
the same schema and ``alembic_version``; the app turns WAL on when it connects, as after a
restore). The tests of migrating itself (``test_migrations.py``,
``test_schema_at_head.py``, ``test_server_process.py``, ``test_setup_race.py``,
``test_one_active_course.py``) migrate files of their own.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from kap_outcomes.backup import backup
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
    backup(f"sqlite:///{_head()}", path)  # refuses a path that exists
    return f"sqlite:///{path}"
