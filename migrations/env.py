"""Alembic environment: the URL comes from the caller (kap_outcomes.migrate) or settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData, pool
from sqlmodel import SQLModel, create_engine

from kap_outcomes.config import get_settings
from kap_outcomes.db import NAMING_CONVENTION

config = context.config


def _target_metadata() -> MetaData:
    """Every table, for what compares the models with the database (``alembic check``,
    ``revision --autogenerate``). kap_outcomes.migrate's upgrade and downgrade only run the
    revisions, which name their own tables: they need only the naming convention (the names
    of the constraints they create) and skip importing every model (a third of the CPU of a
    ``db upgrade``)."""
    if config.attributes.get("revisions_only"):
        return MetaData(naming_convention=NAMING_CONVENTION)
    import kap_outcomes.models  # noqa: F401  (registers every table)

    return SQLModel.metadata


def _url() -> str:
    url = config.attributes.get("database_url")
    return str(url) if url else get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=_target_metadata(),
        literal_binds=True,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        engine = create_engine(_url(), poolclass=pool.NullPool)
        with engine.connect() as connection:
            _run(connection)
        engine.dispose()
    else:
        _run(connectable)


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=_target_metadata(),
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
