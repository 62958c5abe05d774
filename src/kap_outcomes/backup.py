"""``kap-outcomes db backup PATH``: a consistent copy of a live SQLite database.

Copying the database file while the service writes can give a torn or outdated copy (the
latest commits live in the ``-wal`` file beside it). SQLite's online backup API copies the
database page by page into a new file; here it reads inside one read transaction held on the
source for the whole copy, so every step sees the same snapshot: the copy is the database as
of the moment the backup began, every commit acknowledged before then included, whatever is
written meanwhile. In WAL mode a reader never blocks the writers, so the service keeps
answering during the copy (the copy goes in steps, yielding between them).

The copy is written beside PATH under a temporary name, synced, checked
(``PRAGMA integrity_check``) and only then renamed to PATH, so PATH is either a complete
backup or absent. An existing PATH is never overwritten.

PostgreSQL is backed up with ``pg_dump`` (docs/deployment.md); this command says so.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from sqlalchemy.engine import make_url

PAGES_PER_STEP = 1024
"""Pages copied per step of the backup (4 MiB with the default page size)."""


class BackupRefused(RuntimeError):
    """The backup cannot be made as asked: one line for the operator."""


def pg_dump_hint() -> str:
    return (
        "KAP_DATABASE_URL is a PostgreSQL database: back it up with pg_dump, e.g. "
        "`pg_dump --format=custom --file=kap.dump postgresql://USER@HOST:5432/DB` "
        "(the URL without +psycopg; see docs/deployment.md#backups)"
    )


def sqlite_file(database_url: str) -> Path:
    """The database file of a SQLite URL, or BackupRefused saying what to do instead."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        raise BackupRefused(pg_dump_hint())
    if url.get_backend_name() != "sqlite":
        raise BackupRefused("kap-outcomes db backup copies SQLite databases only")
    path = url.database
    if not path or path == ":memory:" or path.startswith("file:"):
        raise BackupRefused("KAP_DATABASE_URL names no SQLite file to back up")
    return Path(path)


def backup(
    database_url: str,
    target: Path,
    *,
    pages_per_step: int = PAGES_PER_STEP,
    pause_between_steps: float = 0.0,
) -> int:
    """Copy the database of ``database_url`` to ``target``; returns the pages copied.
    ``pause_between_steps`` (seconds) spreads the copy out, as on a large database."""
    source_path = sqlite_file(database_url)
    if not source_path.is_file():
        raise BackupRefused(f"no database file at {source_path}")
    if target.exists():
        raise BackupRefused(f"{target} exists; choose a new file (backups are never overwritten)")
    if not target.parent.is_dir():
        raise BackupRefused(f"no directory {target.parent}")
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    source = sqlite3.connect(source_path, isolation_level=None)  # it only reads
    try:
        source.execute("PRAGMA busy_timeout=5000")
        # One snapshot for the whole copy: a read transaction held across every step.
        source.execute("BEGIN")
        source.execute("SELECT count(*) FROM sqlite_master").fetchone()
        copy = sqlite3.connect(partial, isolation_level=None)
        try:
            pages = _copy(source, copy, pages_per_step, pause_between_steps)
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            problems = copy.execute("PRAGMA integrity_check").fetchall()
            if problems != [("ok",)]:
                raise BackupRefused("the copy failed its integrity check; nothing was kept")
        finally:
            copy.close()
        source.execute("COMMIT")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    _sync(partial)
    partial.rename(target)
    _sync(target.parent)
    return pages


def _copy(
    source: sqlite3.Connection, copy: sqlite3.Connection, pages_per_step: int, pause: float
) -> int:
    total = 0

    def progress(status: int, remaining: int, count: int) -> None:
        nonlocal total
        total = count
        if remaining and pause:
            time.sleep(pause)

    source.backup(copy, pages=pages_per_step, progress=progress, sleep=0.005)
    return total


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
