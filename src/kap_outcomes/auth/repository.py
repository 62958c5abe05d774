"""Queries on tokens and enrollment codes (the hot token lookup lives in service.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update

from kap_outcomes.auth.models import ApiToken, EnrollmentCode
from kap_outcomes.rows import table_of

tokens = table_of(ApiToken)
codes = table_of(EnrollmentCode)

_PUBLIC = (
    tokens.c.id,
    tokens.c.role,
    tokens.c.label,
    tokens.c.patient_id,
    tokens.c.created_at,
    tokens.c.expires_at,
    tokens.c.revoked_at,
)


def get_token(conn: Connection, *, organisation_id: str, token_id: str) -> Any | None:
    return conn.execute(
        select(*_PUBLIC).where(tokens.c.id == token_id, tokens.c.organisation_id == organisation_id)
    ).first()


def page_tokens(
    conn: Connection, *, organisation_id: str, after: tuple[datetime, str] | None, limit: int
) -> list[Any]:
    query = select(*_PUBLIC).where(tokens.c.organisation_id == organisation_id)
    if after is not None:
        at, row_id = after
        query = query.where(
            or_(tokens.c.created_at > at, and_(tokens.c.created_at == at, tokens.c.id > row_id))
        )
    return list(conn.execute(query.order_by(tokens.c.created_at, tokens.c.id).limit(limit)).all())


def revoke_token(conn: Connection, *, token_id: str, at: datetime) -> None:
    conn.execute(
        update(tokens)
        .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
        .values(revoked_at=at)
    )


def insert_code(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(codes).values(**values))


def get_code(conn: Connection, *, patient_id: str, enrollment_id: str) -> Any | None:
    """An enrollment's public facts (never its hash)."""
    return conn.execute(
        select(
            codes.c.id,
            codes.c.patient_id,
            codes.c.created_at,
            codes.c.expires_at,
            codes.c.used_at,
        ).where(codes.c.id == enrollment_id, codes.c.patient_id == patient_id)
    ).first()


def redeem_code(conn: Connection, *, code_hash: str, at: datetime) -> Any | None:
    """Mark an unused, unexpired code used, atomically; its row, or None (no oracle on why)."""
    row = conn.execute(
        select(codes.c.id, codes.c.organisation_id, codes.c.patient_id).where(
            codes.c.code_hash == code_hash,
            codes.c.used_at.is_(None),
            codes.c.expires_at > at,
        )
    ).first()
    if row is None:
        return None
    claimed = conn.execute(
        update(codes).where(codes.c.id == row.id, codes.c.used_at.is_(None)).values(used_at=at)
    )
    return row if claimed.rowcount == 1 else None


def link_code_to_token(conn: Connection, *, code_id: str, token_id: str) -> None:
    conn.execute(update(codes).where(codes.c.id == code_id).values(token_id=token_id))
