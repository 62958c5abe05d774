"""Every query on sign-in codes and dashboard sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, insert, or_, select, update

from kap_outcomes.auth.models import ApiToken
from kap_outcomes.dashboard.models import DashboardSession, SigninCode
from kap_outcomes.rows import first, table_of

_codes = table_of(SigninCode)
_sessions = table_of(DashboardSession)
_tokens = table_of(ApiToken)


def insert_code(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(_codes).values(**values))


def redeem_code(conn: Connection, *, code_hash: str, at: datetime) -> SigninCode | None:
    """Mark the code used, if it is unused and unexpired; the row, or None. One UPDATE, so
    two browsers racing with the same link cannot both win."""
    row = first(conn, SigninCode, select(_codes).where(_codes.c.code_hash == code_hash))
    if row is None:
        return None
    done = conn.execute(
        update(_codes)
        .where(_codes.c.id == row.id, _codes.c.used_at.is_(None), _codes.c.expires_at > at)
        .values(used_at=at)
    )
    return row if done.rowcount == 1 else None


def insert_session(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(_sessions).values(**values))


class LiveSession(NamedTuple):
    id_hash: str
    organisation_id: str
    role: str
    actor: str
    expires_at: datetime


def live_session(conn: Connection, *, id_hash: str, at: datetime) -> LiveSession | None:
    """The session if unexpired and not signed out, and its token (if any) still valid."""
    s = _sessions.c
    query = (
        select(*(_sessions.c[name] for name in LiveSession._fields))
        .select_from(_sessions.outerjoin(_tokens, _tokens.c.id == s.token_id))
        .where(
            s.id_hash == id_hash,
            s.revoked_at.is_(None),
            s.expires_at > at,
            or_(
                s.token_id.is_(None),
                (_tokens.c.revoked_at.is_(None))
                & or_(_tokens.c.expires_at.is_(None), _tokens.c.expires_at > at),
            ),
        )
    )
    row = conn.execute(query).first()
    return None if row is None else LiveSession._make(row)


def revoke_session(conn: Connection, *, id_hash: str, at: datetime) -> None:
    conn.execute(
        update(_sessions)
        .where(_sessions.c.id_hash == id_hash, _sessions.c.revoked_at.is_(None))
        .values(revoked_at=at)
    )
