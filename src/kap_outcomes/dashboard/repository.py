"""Every query on sign-in codes and dashboard sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update

from kap_outcomes.auth.models import ApiToken
from kap_outcomes.dashboard.models import DashboardSession, SigninCode
from kap_outcomes.rows import table_of

_codes = table_of(SigninCode)
_sessions = table_of(DashboardSession)
_tokens = table_of(ApiToken)


def insert_code(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(_codes).values(**values))


def redeem_code(conn: Connection, *, code_hash: str, at: datetime) -> Any | None:
    """Mark the code used, if it is unused and unexpired; the row, or None. One UPDATE, so
    two browsers racing with the same link cannot both win."""
    row = conn.execute(select(_codes).where(_codes.c.code_hash == code_hash)).first()
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


def live_session(conn: Connection, *, id_hash: str, at: datetime) -> Any | None:
    """The session if unexpired and not signed out, and its token (if any) still valid."""
    s = _sessions.c
    query = (
        select(s.id_hash, s.organisation_id, s.role, s.actor, s.expires_at)
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
    return conn.execute(query).first()


def revoke_session(conn: Connection, *, id_hash: str, at: datetime) -> None:
    conn.execute(
        update(_sessions)
        .where(_sessions.c.id_hash == id_hash, _sessions.c.revoked_at.is_(None))
        .values(revoked_at=at)
    )
