"""HTTP routes of webhooks (admins of the organisation)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response

from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.auth.dependencies import AdminDep, DbDep, admin_principal
from kap_outcomes.calling import AdminCaller
from kap_outcomes.creating import Create, Creation, located
from kap_outcomes.http import Cursor, Limit, ResourceId, problems, settings_of, with_headers
from kap_outcomes.pagination import Page
from kap_outcomes.preconditions import etag
from kap_outcomes.webhooks import service
from kap_outcomes.webhooks.egress import EgressPolicy
from kap_outcomes.webhooks.models import (
    DeliveryPublic,
    WebhookCreate,
    WebhookPublic,
    WebhookUpdate,
    WebhookWithSecret,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=AuditedRoute)

IfMatch = Annotated[
    str | None,
    Header(alias="If-Match", max_length=200, description="The webhook's ETag, from GET"),
]
PRECONDITIONS: dict[int | str, dict[str, Any]] = problems(412, 428, ok=with_headers("ETag"))


def _policy(request: Request) -> EgressPolicy:
    return EgressPolicy(tuple(settings_of(request).webhook_allowed_networks))


CREATE_WEBHOOK = Create(WebhookCreate, auth=admin_principal, replayable=False)


@router.post("", status_code=201, response_model=WebhookWithSecret)
async def create_webhook(
    new: Annotated[Creation[WebhookCreate], Depends(CREATE_WEBHOOK)],
) -> Response:
    """Register an endpoint; the answer holds its signing secret, shown this once (so a
    retry is not replayed: it registers another)."""
    return await new.respond(
        partial(
            service.create_endpoint,
            principal=new.principal,
            data=new.data,
            policy=_policy(new.request),
        ),
        located("/v1/webhooks/{id}"),
    )


@router.get("")
async def list_webhooks(admin: AdminCaller) -> Page[WebhookPublic]:
    return await admin.read(service.list_endpoints)


@router.get("/{webhook_id}", responses=problems(ok=with_headers("ETag")))
async def get_webhook(
    webhook_id: ResourceId, principal: AdminDep, db: DbDep, response: Response
) -> WebhookPublic:
    """The endpoint with its state (disabled, and why) and its ``ETag``."""
    found, version = await db.read(
        partial(service.get_endpoint, principal=principal, endpoint_id=webhook_id)
    )
    response.headers["ETag"] = etag(version)
    return found


@router.patch("/{webhook_id}", responses=PRECONDITIONS)
async def update_webhook(
    webhook_id: ResourceId,
    data: WebhookUpdate,
    principal: AdminDep,
    db: DbDep,
    request: Request,
    response: Response,
    if_match: IfMatch = None,
) -> WebhookPublic:
    """Change the URL, the event types or the description; `enabled: true` turns a
    disabled endpoint back on (its pending deliveries resume)."""
    updated, version = await db.write(
        partial(
            service.update_endpoint,
            principal=principal,
            endpoint_id=webhook_id,
            if_match=if_match,
            data=data,
            policy=_policy(request),
        )
    )
    response.headers["ETag"] = etag(version)
    return updated


@router.delete("/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: ResourceId, admin: AdminCaller) -> Response:
    """Remove the endpoint, its pending deliveries and their history."""
    await admin.write(service.delete_endpoint, endpoint_id=webhook_id)
    return Response(status_code=204)


@router.post("/{webhook_id}/rotate-secret")
async def rotate_webhook_secret(webhook_id: ResourceId, admin: AdminCaller) -> WebhookWithSecret:
    """A new secret, shown this once; the previous one keeps signing beside it for 24 h."""
    return await admin.write(service.rotate_secret, endpoint_id=webhook_id)


@router.get("/{webhook_id}/deliveries")
async def list_webhook_deliveries(
    webhook_id: ResourceId, admin: AdminCaller, limit: Limit = 50, cursor: Cursor = None
) -> Page[DeliveryPublic]:
    """Deliveries newest first, each with every attempt (time, status code, error)."""
    return await admin.read(
        service.list_deliveries, endpoint_id=webhook_id, cursor=cursor, limit=limit
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    responses=problems(409),
)
async def redeliver_webhook_delivery(
    webhook_id: ResourceId, delivery_id: ResourceId, admin: AdminCaller
) -> DeliveryPublic:
    """Send the event again now (same `webhook-id`), with a fresh retry schedule."""
    return await admin.write(service.redeliver, endpoint_id=webhook_id, delivery_id=delivery_id)
