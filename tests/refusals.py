"""A database that refuses one organisation's new rows of one table, with an error of its own
kind (neither "unavailable" nor "value out of range"): how the tests make a request end in a
500 on a real database. PostgreSQL's message carries the row's values, as a unique
violation's ``DETAIL`` does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text

from kap_outcomes.db import Database


@contextmanager
def refusing_inserts(db: Database, table: str, org_id: str) -> Iterator[None]:
    assert table.isidentifier() and org_id.replace("-", "").isalnum()
    name = f"kap_test_refuse_{table}"

    def install(conn: Any) -> None:
        if db.sqlite:
            conn.execute(
                text(
                    f"CREATE TRIGGER {name} BEFORE INSERT ON {table} "
                    f"WHEN NEW.organisation_id = '{org_id}' "
                    "BEGIN SELECT json('{'); END"  # malformed JSON: a plain SQL error
                )
            )
        else:
            conn.execute(
                text(
                    f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused %', row_to_json(NEW); END $$"
                )
            )
            conn.execute(
                text(
                    f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW "
                    f"WHEN (NEW.organisation_id = '{org_id}') EXECUTE FUNCTION {name}()"
                )
            )

    def drop(conn: Any) -> None:
        if db.sqlite:
            conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
        else:
            conn.execute(text(f"DROP TRIGGER IF EXISTS {name} ON {table}"))
            conn.execute(text(f"DROP FUNCTION IF EXISTS {name}()"))

    db.run_write(install)
    try:
        yield
    finally:
        db.run_write(drop)
