"""All queries on backend clients and their used assertion ids."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from kap_outcomes.auth.models import ApiToken, Role
from kap_outcomes.auth.tokens import generate_token, hash_token
from kap_outcomes.db import HotStatement
from kap_outcomes.rows import table_of, unless_taken
from kap_outcomes.smart.models import SmartClient, SmartJti

clients = table_of(SmartClient)
jtis = table_of(SmartJti)
_tokens = table_of(ApiToken)


def insert_client(
    conn: Connection,
    *,
    client_id: str,
    organisation_id: str,
    name: str,
    jwks: dict[str, Any] | None,
    jwks_uri: str | None,
    scope: str,
    now: datetime,
) -> None:
    """The client, and the ``api_tokens`` row that is its identity: the hash of a secret that
    is never kept nor shown, so no bearer value can match it. Revoking that token
    (``DELETE /v1/tokens/{client_id}``) revokes the client too."""
    conn.execute(
        insert(_tokens).values(
            id=client_id,
            organisation_id=organisation_id,
            role=Role.integration.value,
            label=f"SMART backend client: {name}"[:200],
            token_hash=hash_token(generate_token()),
            patient_id=None,
            created_at=now,
            expires_at=None,
            revoked_at=None,
        )
    )
    conn.execute(
        insert(clients).values(
            id=client_id,
            organisation_id=organisation_id,
            name=name,
            jwks=jwks,
            jwks_uri=jwks_uri,
            scope=scope,
            created_at=now,
            updated_at=None,
            revoked_at=None,
        )
    )


class Shown(NamedTuple):
    """A client as shown: its revocation is its own or its identity token's."""

    id: str
    name: str
    scope: str
    jwks: dict[str, Any] | None
    jwks_uri: str | None
    created_at: datetime
    updated_at: datetime | None
    revoked_at: datetime | None


def _shown() -> Select[Any]:
    revoked = func.coalesce(clients.c.revoked_at, _tokens.c.revoked_at).label("revoked_at")
    own = (clients.c[name] for name in Shown._fields if name != "revoked_at")
    return select(*own, revoked).join(_tokens, _tokens.c.id == clients.c.id)


def get_client(
    conn: Connection, *, organisation_id: str, client_id: str, for_update: bool = False
) -> Shown | None:
    """A client of the organisation as registered (revoked or not); ``for_update`` locks
    its row until the transaction ends (PostgreSQL; SQLite has one writer anyway)."""
    query = _shown().where(clients.c.id == client_id, clients.c.organisation_id == organisation_id)
    if for_update:
        query = query.with_for_update(of=clients)
    row = conn.execute(query).first()
    return None if row is None else Shown._make(row)


def list_clients(conn: Connection, *, organisation_id: str) -> list[Shown]:
    """Every client of the organisation, newest first (an organisation has a handful)."""
    query = _shown().where(clients.c.organisation_id == organisation_id)
    rows = conn.execute(query.order_by(clients.c.created_at.desc(), clients.c.id.desc()))
    return [Shown._make(row) for row in rows]


def update_client(conn: Connection, *, client_id: str, now: datetime, **values: Any) -> None:
    conn.execute(update(clients).where(clients.c.id == client_id).values(updated_at=now, **values))


def revoke_client(conn: Connection, *, client_id: str, now: datetime) -> None:
    """The client and its identity token, from now on (its access tokens stop at once)."""
    conn.execute(
        update(clients)
        .where(clients.c.id == client_id, clients.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    conn.execute(
        update(_tokens)
        .where(_tokens.c.id == client_id, _tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def _active(client_id: Any) -> tuple[ColumnElement[bool], ...]:
    """Neither the client nor its identity token is revoked (two primary-key lookups)."""
    return (
        clients.c.id == client_id,
        clients.c.revoked_at.is_(None),
        _tokens.c.id == clients.c.id,
        _tokens.c.revoked_at.is_(None),
    )


class Active(NamedTuple):
    """What checking a client's assertion needs of it."""

    id: str
    organisation_id: str
    jwks: dict[str, Any] | None
    jwks_uri: str | None
    scope: str


def active_client(conn: Connection, *, client_id: str) -> Active | None:
    query = select(*(clients.c[name] for name in Active._fields)).where(*_active(client_id))
    row = conn.execute(query).first()
    return None if row is None else Active._make(row)


_ACTIVE_ORGANISATION = HotStatement(
    select(clients.c.organisation_id).where(*_active(bindparam("client_id")))
)


def active_client_organisation(conn: Connection, *, client_id: str) -> str | None:
    """The organisation of a client that is still registered (by primary key: every request
    made with an access token runs it)."""
    row = _ACTIVE_ORGANISATION.first(conn, {"client_id": client_id})
    return None if row is None else str(row[0])


def record_jti(
    conn: Connection, *, client_id: str, jti: str, keep_until: datetime, now: datetime
) -> bool:
    """Remember an assertion id; False when the client has used it before.

    The client's lapsed ids go first: an assertion is refused once it has expired, so its id
    need not be kept any longer.
    """
    conn.execute(delete(jtis).where(jtis.c.client_id == client_id, jtis.c.expires_at < now))
    return unless_taken(
        conn, insert(jtis).values(client_id=client_id, jti=jti, expires_at=keep_until)
    )
