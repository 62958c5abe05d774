"""Token lifecycle for admins: issue (the secret shown once), list (never a secret), revoke."""

from __future__ import annotations

from sqlalchemy import Connection

from kap_outcomes.auth import repository
from kap_outcomes.auth.models import Role, TokenCreate, TokenIssued, TokenPublic
from kap_outcomes.auth.service import Principal, issue_token
from kap_outcomes.db import utcnow
from kap_outcomes.errors import FieldProblem, invalid, not_found
from kap_outcomes.pagination import Page, cut, decode_cursor
from kap_outcomes.patients import repository as patients_repository


def create_token(conn: Connection, *, principal: Principal, data: TokenCreate) -> TokenIssued:
    problems: list[FieldProblem] = []
    if (data.role is Role.patient) != (data.patient_id is not None):
        problems.append(
            FieldProblem(pointer="/patient_id", detail="required for, and only for, role patient")
        )
    if data.expires_at is not None and data.expires_at <= utcnow():
        problems.append(FieldProblem(pointer="/expires_at", detail="must lie in the future"))
    if problems:
        raise invalid(problems)
    if data.patient_id is not None and not patients_repository.exists(
        conn, organisation_id=principal.organisation_id, patient_id=data.patient_id
    ):
        raise invalid(
            [FieldProblem(pointer="/patient_id", detail="not a patient of this organisation")]
        )
    token_id, secret = issue_token(
        conn,
        organisation_id=principal.organisation_id,
        role=data.role,
        label=data.label,
        patient_id=data.patient_id,
        expires_at=data.expires_at,
    )
    row = repository.get_token(conn, organisation_id=principal.organisation_id, token_id=token_id)
    assert row is not None  # issued in this transaction
    return TokenIssued(**row.model_dump(), token=secret)


def list_tokens(
    conn: Connection, *, principal: Principal, cursor: str | None, limit: int
) -> Page[TokenPublic]:
    after = decode_cursor(cursor) if cursor else None
    rows = repository.page_tokens(
        conn, organisation_id=principal.organisation_id, after=after, limit=limit + 1
    )
    rows, next_cursor = cut(rows, limit, lambda r: (r.created_at, r.id))
    return Page[TokenPublic](data=rows, next_cursor=next_cursor)


def get_token(conn: Connection, *, principal: Principal, token_id: str) -> TokenPublic:
    row = repository.get_token(conn, organisation_id=principal.organisation_id, token_id=token_id)
    if row is None:
        raise not_found("Token")
    return row


def revoke_token(conn: Connection, *, principal: Principal, token_id: str) -> None:
    """Revoked from the next request on; revoking twice is harmless (the first time stays)."""
    if (
        repository.get_token(conn, organisation_id=principal.organisation_id, token_id=token_id)
        is None
    ):
        raise not_found("Token")
    repository.revoke_token(conn, token_id=token_id, at=utcnow())
