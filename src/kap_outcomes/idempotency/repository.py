"""All queries on idempotency records."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from kap_outcomes.idempotency.models import IdempotencyRecord
from kap_outcomes.rows import table_of

records = table_of(IdempotencyRecord)


class Kept(NamedTuple):
    """What a key's record holds for a replay."""

    id: str
    fingerprint: str
    status_code: int | None
    response_body: str | None
    created_at: datetime


def find(conn: Connection, *, token_id: str, key: str) -> Kept | None:
    row = conn.execute(
        select(*(records.c[name] for name in Kept._fields)).where(
            records.c.token_id == token_id, records.c.key == key
        )
    ).first()
    return None if row is None else Kept._make(row)


def claim(conn: Connection, values: dict[str, Any]) -> bool:
    """Insert the key; False when another request holds it (its insert won)."""
    try:
        with conn.begin_nested():
            conn.execute(insert(records).values(**values))
    except IntegrityError:
        return False
    return True


def complete(conn: Connection, *, record_id: str, status_code: int, body: str) -> None:
    conn.execute(
        update(records)
        .where(records.c.id == record_id)
        .values(status_code=status_code, response_body=body)
    )


def forget(conn: Connection, *, record_id: str) -> None:
    conn.execute(delete(records).where(records.c.id == record_id))


def purge_before(conn: Connection, *, cutoff: datetime) -> int:
    result = conn.execute(delete(records).where(records.c.created_at < cutoff))
    return int(result.rowcount or 0)
