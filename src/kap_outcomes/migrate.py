"""Alembic, driven from code: the same migrations for the CLI, the server and the tests.

Migrations run under a lock, so any number of processes that migrate at the same moment
(`serve` and `token create` on a new SQLite file, several `db upgrade`) end with one schema:
a file lock beside a SQLite database, an advisory lock on PostgreSQL. Whoever gets the lock
second finds the schema at head (Alembic reads the revision after the lock is taken).

Whether a database is at head is read without Alembic: its version table against the heads of
the revision files, whose ``revision`` and ``down_revision`` are read as text
(:func:`head_revisions`). A start on a database at head (every `serve`, `token create`...
after the first, and /readyz) never imports Alembic, its templating or the revision modules,
which only a migration needs.
"""

from __future__ import annotations

import ast
import fcntl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from alembic.config import Config

UPGRADE_COMMAND = "kap-outcomes db upgrade"
PG_LOCK_KEY = 0x6B61_705F_6D69_67  # "kap_mig": the advisory lock of migrations
VERSION_TABLE = "alembic_version"  # Alembic's default; migrations/env.py keeps it


class SchemaNotReady(RuntimeError):
    """The database is not at this version's schema (or cannot be reached): one line."""


def migrations_dir() -> Path:
    packaged = Path(__file__).parent / "migrations"
    if packaged.is_dir():  # installed wheel
        return packaged
    return Path(__file__).resolve().parents[2] / "migrations"  # source checkout


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    from alembic import command

    with migration_lock(database_url) as connection:
        config = alembic_config(database_url)
        config.attributes["connection"] = connection
        config.attributes["revisions_only"] = True  # no model needed (migrations/env.py)
        command.upgrade(config, revision)


def downgrade(database_url: str, revision: str) -> None:
    from alembic import command

    with migration_lock(database_url) as connection:
        config = alembic_config(database_url)
        config.attributes["connection"] = connection
        config.attributes["revisions_only"] = True  # no model needed (migrations/env.py)
        command.downgrade(config, revision)


@contextmanager
def migration_lock(database_url: str) -> Iterator[Connection | None]:
    """Hold the migration lock of the database; on PostgreSQL, yield the connection that
    holds it (migrate on it); elsewhere None (Alembic connects by URL)."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        engine = create_engine(url, poolclass=NullPool)
        try:
            with _connect(engine) as conn:
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": PG_LOCK_KEY})
                conn.commit()  # a session lock: it outlives this transaction
                try:
                    yield conn
                finally:
                    # closing the connection releases the lock too, should this fail
                    with suppress(Exception):
                        conn.rollback()
                        conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PG_LOCK_KEY})
                        conn.commit()
        finally:
            engine.dispose()
        return
    path = url.database if url.get_backend_name() == "sqlite" else None
    if not path or path == ":memory:" or path.startswith("file:"):
        yield None  # nothing another process could migrate at the same time
        return
    with Path(f"{path}.migrate.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed, or the process ends
        yield None


def _connect(engine: Engine) -> Connection:
    """A connection, or SchemaNotReady in one line when the database cannot be reached."""
    try:
        return engine.connect()
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise SchemaNotReady(f"cannot reach the database of KAP_DATABASE_URL: {reason}") from None


@lru_cache(maxsize=1)
def head_revisions() -> frozenset[str]:
    """The revisions this version of the code expects the database to be at: those of
    ``migrations/versions`` that no other revision names as its ``down_revision``. The files'
    two assignments are read with :mod:`ast`, as literals, without importing the modules or
    Alembic (tests/test_schema_at_head.py finds the same heads as Alembic's ScriptDirectory)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (migrations_dir() / "versions").glob("*.py"):
        found = _revision_names(ast.parse(path.read_bytes(), filename=str(path)))
        if "revision" not in found:
            continue
        revisions.add(str(found["revision"]))
        down = found.get("down_revision")
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, tuple | list):
            parents.update(str(name) for name in down)
    return frozenset(revisions - parents)


def _revision_names(module: ast.Module) -> dict[str, object]:
    """The module-level ``revision`` and ``down_revision`` literals (annotated or not)."""
    found: dict[str, object] = {}
    for node in module.body:
        target: ast.expr
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            found[target.id] = ast.literal_eval(value)
    return found


def current_revisions(conn: Connection) -> frozenset[str]:
    """The revisions the database is at (none when Alembic never ran on it)."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return frozenset()
    rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))  # noqa: S608
    return frozenset(rows.scalars())


def schema_gap(conn: Connection) -> str | None:
    """None when the database is at head; else one line saying where it is and what to run."""
    current = current_revisions(conn)
    heads = head_revisions()
    if current == heads:
        return None
    needs = ", ".join(sorted(heads))
    where = (
        "the database is empty"
        if not current
        else f"the database schema is at {', '.join(sorted(current))}"
    )
    return f"{where}, this version needs {needs}: run `{UPGRADE_COMMAND}`"


def require_head(database_url: str) -> None:
    """Raise SchemaNotReady unless the database is reachable and at head."""
    gap = schema_gap_of(database_url)
    if gap is not None:
        raise SchemaNotReady(gap)


def ready_schema(database_url: str) -> None:
    """Before a command uses the database: the embedded SQLite default is migrated (it must
    just work); a server database must already be at head (releases run `db upgrade`)."""
    if make_url(database_url).get_backend_name() != "sqlite":
        require_head(database_url)
        return
    with suppress(SchemaNotReady):
        if schema_gap_of(database_url) is None:
            return  # at head: nothing to migrate, and Alembic is not even imported
    # under the lock, which finds the work done if another process migrated meanwhile; a file
    # that cannot be opened fails here, as it always did
    upgrade(database_url)


def schema_gap_of(database_url: str) -> str | None:
    """:func:`schema_gap` of the database at ``database_url``, or SchemaNotReady when it
    cannot be reached."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with _connect(engine) as conn:
            return schema_gap(conn)
    finally:
        engine.dispose()
