"""Use cases on webhook endpoints (admins): register, list, change, delete, rotate the
secret, list deliveries with every attempt, redeliver.

The secret is returned once, when the endpoint is registered or its secret rotated; after a
rotation the previous secret keeps signing (beside the new one) for ``ROTATION_GRACE``.
Endpoints carry an ``ETag`` (their version); a change needs ``If-Match``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection

from kap_outcomes.auth.service import Principal
from kap_outcomes.db import after_commit, new_id, utcnow
from kap_outcomes.errors import FieldProblem, conflict, invalid, not_found
from kap_outcomes.events.outbox import BELL
from kap_outcomes.pagination import Page, cut, decode_cursor
from kap_outcomes.preconditions import check_if_match, precondition_failed
from kap_outcomes.rows import shaped, values_of
from kap_outcomes.webhooks import repository, signing
from kap_outcomes.webhooks.egress import EgressPolicy, Refused, check_registration
from kap_outcomes.webhooks.models import (
    AttemptPublic,
    DeliveryPublic,
    WebhookCreate,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookPublic,
    WebhookUpdate,
    WebhookWithSecret,
)

ROTATION_GRACE = timedelta(hours=24)


def _check_url(url: str, policy: EgressPolicy) -> None:
    try:
        check_registration(url, policy)
    except Refused as exc:
        raise invalid([FieldProblem(pointer="/url", detail=str(exc))]) from exc


def public(row: WebhookEndpoint) -> WebhookPublic:
    return shaped(WebhookPublic, row)


def _require(
    conn: Connection, principal: Principal, endpoint_id: str, *, lock: bool = False
) -> WebhookEndpoint:
    row = repository.get_endpoint(
        conn, organisation_id=principal.organisation_id, endpoint_id=endpoint_id, lock=lock
    )
    if row is None:
        raise not_found("Webhook")
    return row


def create_endpoint(
    conn: Connection, *, principal: Principal, data: WebhookCreate, policy: EgressPolicy
) -> WebhookWithSecret:
    _check_url(data.url, policy)
    now = utcnow()
    values: dict[str, Any] = {
        "id": new_id(),
        "organisation_id": principal.organisation_id,
        "url": data.url,
        "event_types": sorted({t.value for t in data.event_types}),
        "description": data.description,
        "secret": signing.new_secret(),
        "enabled": True,
        "consecutive_failures": 0,
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "created_by": principal.token_id,
    }
    repository.insert_endpoint(conn, values)
    row = _require(conn, principal, values["id"])
    return WebhookWithSecret(**public(row).model_dump(), secret=values["secret"])


def list_endpoints(conn: Connection, *, principal: Principal) -> Page[WebhookPublic]:
    rows = repository.list_endpoints(conn, organisation_id=principal.organisation_id)
    return Page[WebhookPublic](data=[public(r) for r in rows], next_cursor=None)


def get_endpoint(
    conn: Connection, *, principal: Principal, endpoint_id: str
) -> tuple[WebhookPublic, int]:
    row = _require(conn, principal, endpoint_id)
    return public(row), int(row.version)


def update_endpoint(
    conn: Connection,
    *,
    principal: Principal,
    endpoint_id: str,
    if_match: str | None,
    data: WebhookUpdate,
    policy: EgressPolicy,
) -> tuple[WebhookPublic, int]:
    row = _require(conn, principal, endpoint_id, lock=True)
    check_if_match(if_match, row.version, "webhook")
    values: dict[str, Any] = {"version": row.version + 1, "updated_at": utcnow()}
    if data.url is not None:
        _check_url(data.url, policy)
        values["url"] = data.url
    if data.event_types is not None:
        values["event_types"] = sorted({t.value for t in data.event_types})
    if "description" in data.model_fields_set:
        values["description"] = data.description
    if data.enabled is True and not row.enabled:
        values |= {
            "enabled": True,
            "disabled_reason": None,
            "disabled_at": None,
            "consecutive_failures": 0,
        }
    elif data.enabled is False and row.enabled:
        values |= {
            "enabled": False,
            "disabled_reason": "Disabled by an admin.",
            "disabled_at": values["updated_at"],
        }
    if not repository.update_endpoint(
        conn, endpoint_id=endpoint_id, expected_version=row.version, values=values
    ):
        raise precondition_failed("webhook")
    return get_endpoint(conn, principal=principal, endpoint_id=endpoint_id)


def delete_endpoint(conn: Connection, *, principal: Principal, endpoint_id: str) -> None:
    _require(conn, principal, endpoint_id, lock=True)
    repository.delete_endpoint(conn, endpoint_id=endpoint_id)


def rotate_secret(conn: Connection, *, principal: Principal, endpoint_id: str) -> WebhookWithSecret:
    row = _require(conn, principal, endpoint_id, lock=True)
    now = utcnow()
    secret = signing.new_secret()
    repository.update_endpoint(
        conn,
        endpoint_id=endpoint_id,
        expected_version=None,
        values={
            "secret": secret,
            "previous_secret": row.secret,
            "previous_secret_until": now + ROTATION_GRACE,
            "version": row.version + 1,
            "updated_at": now,
        },
    )
    fresh = _require(conn, principal, endpoint_id)
    return WebhookWithSecret(**public(fresh).model_dump(), secret=secret)


def _delivery(row: WebhookDelivery, attempts: list[AttemptPublic]) -> DeliveryPublic:
    pending = row.status == repository.PENDING
    return shaped(
        DeliveryPublic,
        {
            **values_of(row),
            "attempt_count": row.attempts,
            "next_attempt_at": row.next_attempt_at if pending else None,
            "attempts": attempts,
        },
    )


def _with_attempts(conn: Connection, rows: list[WebhookDelivery]) -> list[DeliveryPublic]:
    by_delivery: dict[str, list[AttemptPublic]] = {}
    for a in repository.attempts_of(conn, [r.id for r in rows]):
        by_delivery.setdefault(a.delivery_id, []).append(shaped(AttemptPublic, a))
    return [_delivery(r, by_delivery.get(r.id, [])) for r in rows]


def list_deliveries(
    conn: Connection,
    *,
    principal: Principal,
    endpoint_id: str,
    cursor: str | None,
    limit: int,
) -> Page[DeliveryPublic]:
    """Newest first, each with every attempt (time, status code, error)."""
    before = decode_cursor(cursor) if cursor else None
    _require(conn, principal, endpoint_id)
    rows = repository.page_deliveries(conn, endpoint_id=endpoint_id, before=before, limit=limit + 1)
    rows, next_cursor = cut(rows, limit, lambda r: (r.created_at, r.id))
    return Page[DeliveryPublic](data=_with_attempts(conn, rows), next_cursor=next_cursor)


def redeliver(
    conn: Connection, *, principal: Principal, endpoint_id: str, delivery_id: str
) -> DeliveryPublic:
    """Send the event again now, with a fresh retry schedule (same ``webhook-id``)."""
    endpoint = _require(conn, principal, endpoint_id)
    if not endpoint.enabled:
        raise conflict("The webhook is disabled; enable it (PATCH enabled: true) first.")
    row = repository.get_delivery(conn, endpoint_id=endpoint_id, delivery_id=delivery_id)
    if row is None:
        raise not_found("Delivery")
    repository.update_delivery(
        conn,
        delivery_id=delivery_id,
        values={
            "status": repository.PENDING,
            "retry_step": 0,
            "next_attempt_at": utcnow(),
            "completed_at": None,
        },
    )
    after_commit(conn, BELL.ring)  # the worker sends it now, not at its next poll
    fresh = repository.get_delivery(conn, endpoint_id=endpoint_id, delivery_id=delivery_id)
    assert fresh is not None  # read above, in this transaction
    return _with_attempts(conn, [fresh])[0]
