"""Queries on tokens and enrollment codes (the hot token lookup lives in service.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, insert, select, update

from kap_outcomes.auth.models import ApiToken, EnrollmentCode, EnrollmentPublic, TokenPublic
from kap_outcomes.rows import after_key, columns_for, shaped, table_of

tokens = table_of(ApiToken)
codes = table_of(EnrollmentCode)

_PUBLIC = columns_for(tokens, TokenPublic)  # never the secret's hash


def get_token(conn: Connection, *, organisation_id: str, token_id: str) -> TokenPublic | None:
    row = conn.execute(
        select(*_PUBLIC).where(tokens.c.id == token_id, tokens.c.organisation_id == organisation_id)
    ).first()
    return None if row is None else shaped(TokenPublic, row)


def page_tokens(
    conn: Connection, *, organisation_id: str, after: tuple[datetime, str] | None, limit: int
) -> list[TokenPublic]:
    query = select(*_PUBLIC).where(tokens.c.organisation_id == organisation_id)
    rows = conn.execute(after_key(query, tokens.c.created_at, tokens.c.id, after).limit(limit))
    return [shaped(TokenPublic, row) for row in rows]


def revoke_token(conn: Connection, *, token_id: str, at: datetime) -> None:
    conn.execute(
        update(tokens)
        .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
        .values(revoked_at=at)
    )


def insert_code(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(codes).values(**values))


def get_code(conn: Connection, *, patient_id: str, enrollment_id: str) -> EnrollmentPublic | None:
    """An enrollment's public facts (never its hash)."""
    row = conn.execute(
        select(*columns_for(codes, EnrollmentPublic)).where(
            codes.c.id == enrollment_id, codes.c.patient_id == patient_id
        )
    ).first()
    return None if row is None else shaped(EnrollmentPublic, row)


class Redeemed(NamedTuple):
    """An enrollment code just used: whose it is."""

    id: str
    organisation_id: str
    patient_id: str


def redeem_code(conn: Connection, *, code_hash: str, at: datetime) -> Redeemed | None:
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
    return Redeemed(row.id, row.organisation_id, row.patient_id) if claimed.rowcount == 1 else None


def link_code_to_token(conn: Connection, *, code_id: str, token_id: str) -> None:
    conn.execute(update(codes).where(codes.c.id == code_id).values(token_id=token_id))
