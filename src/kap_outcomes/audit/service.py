"""Recording audit events.

Every authenticated request to an audited route leaves exactly one event: the principal, the
operation (``POST /v1/patients/{patient_id}/assessments``), the resource and patient it
touched, the outcome status and the request id. A successful write records its event inside
its own transaction (the data and its audit commit together or not at all); a read, and a
request that was refused or crashed (500), record theirs in a transaction of their own before
the answer goes out. The patient is the one the request concerned: named by the path, or by a
service once it knows it (:func:`concerns`: the row read, the filter searched by).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection

from kap_outcomes.audit import repository
from kap_outcomes.audit.models import AuditEventPublic
from kap_outcomes.auth.service import Principal
from kap_outcomes.db import new_id, utcnow
from kap_outcomes.pagination import Page, cut, decode_cursor

T = TypeVar("T")


@dataclass(slots=True)
class AuditScope:
    """What the route knows of the request; the principal arrives once authenticated, the
    patient once a service knows it (:func:`concerns`). One scope, one event: its id is fixed
    here, so writing it twice (after a failure that followed a committed write) stores one."""

    action: str
    resource_type: str
    path_params: dict[str, str]
    success_status: int
    request_id: str | None
    write: bool = True
    """Does a successful unit of work record the event in its own transaction? Only for a
    request that changes data; a read may write too (the caseload's summaries), and is still
    recorded once, at its end, with the status it answered."""
    principal: Principal | None = None
    patient_id: str | None = None
    resource_id: str | None = None
    event_id: str = field(default_factory=new_id)
    recorded: bool = field(default=False)
    in_transaction: bool = field(default=False)


CURRENT: ContextVar[AuditScope | None] = ContextVar("kap_audit_scope", default=None)


def concerns(patient_id: str | None) -> None:
    """The request is about this patient (called by a service once it knows it: a read by an
    assessment's id, a search by a filter). Outside an audited request it does nothing."""
    scope = CURRENT.get()
    if scope is not None and patient_id:
        scope.patient_id = str(patient_id)


def names(resource_id: str) -> None:
    """The request is about this resource, which its path may not name (a bulk export: its
    kick-off creates it, its files are named by type). Outside an audited request it does
    nothing. An export concerns many patients, so its event names none of them."""
    scope = CURRENT.get()
    if scope is not None:
        scope.resource_id = resource_id


def acting_as(principal: Principal) -> None:
    """The caller of a public route, once known (a redeemed enrollment: the new token)."""
    scope = CURRENT.get()
    if scope is not None:
        scope.principal = principal
        concerns(principal.patient_id)


def _values(
    scope: AuditScope, principal: Principal, status: int, result: Any, at: datetime
) -> dict[str, Any]:
    params = scope.path_params
    patient_id = (
        scope.patient_id
        or params.get("patient_id")
        or getattr(result, "patient_id", None)
        or principal.patient_id  # a patient token's requests are about its patient
    )
    resource_id = (
        scope.resource_id
        or getattr(result, "id", None)
        or (next(reversed(params.values())) if params else None)
    )
    return {
        "id": scope.event_id,
        "organisation_id": principal.organisation_id,
        "at": at,
        "actor": principal.token_id,
        "role": principal.role.value,
        "action": scope.action,
        "resource_type": scope.resource_type,
        "resource_id": str(resource_id)[:80] if resource_id is not None else None,
        # only what can be one of our ids (a probe with a junk id keeps it in resource_id)
        "patient_id": str(patient_id) if patient_id and len(str(patient_id)) <= 36 else None,
        "status": status,
        "request_id": scope.request_id,
    }


def in_transaction(fn: Callable[[Connection], T]) -> Callable[[Connection], T]:
    """Wrap a unit of work so that, when it succeeds, its audit event is written in the same
    transaction (``Database.write`` calls this for every write; a request that only reads
    data records its event at its end instead). The scope is current while ``fn`` runs,
    whichever thread runs it, so that the services can say which patient it concerns."""
    scope = CURRENT.get()
    if scope is None:
        return fn

    def audited(conn: Connection) -> T:
        token = CURRENT.set(scope)
        try:
            result = fn(conn)
        finally:
            CURRENT.reset(token)
        if scope.write and scope.principal is not None and not scope.recorded:
            repository.append(
                conn, _values(scope, scope.principal, scope.success_status, result, utcnow())
            )
            scope.recorded = scope.in_transaction = True
        return result

    return audited


def record(conn: Connection, *, scope: AuditScope, status: int, result: Any = None) -> None:
    """The event in a transaction of its own: a read, a refusal, a crash. After a unit of
    work that recorded it in its transaction, only if that transaction did not commit."""
    if scope.principal is None:
        return
    values = _values(scope, scope.principal, status, result, utcnow())
    if scope.in_transaction:
        repository.append_unless_stored(conn, values)
    else:
        repository.append(conn, values)
    scope.recorded = True


def list_events(
    conn: Connection,
    *,
    principal: Principal,
    patient_id: str | None,
    actor: str | None,
    since: datetime | None,
    until: datetime | None,
    cursor: str | None,
    limit: int,
) -> Page[AuditEventPublic]:
    before = decode_cursor(cursor) if cursor else None
    rows = repository.page(
        conn,
        organisation_id=principal.organisation_id,
        patient_id=patient_id,
        actor=actor,
        since=since,
        until=until,
        before=before,
        limit=limit + 1,
    )
    rows, next_cursor = cut(rows, limit, lambda r: (r.at, r.id))
    return Page[AuditEventPublic](
        data=[AuditEventPublic.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=next_cursor,
    )
