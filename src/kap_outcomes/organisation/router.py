"""HTTP routes for the organisation's settings (admin only)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response

from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.auth.dependencies import AdminDep, DbDep
from kap_outcomes.http import problems, with_headers
from kap_outcomes.organisation import service
from kap_outcomes.organisation.models import OrganisationSettings, OrganisationSettingsUpdate
from kap_outcomes.preconditions import etag

router = APIRouter(prefix="/v1/organisation", tags=["organisation"], route_class=AuditedRoute)

_PRECONDITIONS: dict[int | str, dict[str, Any]] = problems(412, 428, ok=with_headers("ETag"))


@router.get("", responses=problems(ok=with_headers("ETag")))
async def get_organisation(
    principal: AdminDep, db: DbDep, response: Response
) -> OrganisationSettings:
    """The organisation's settings, with their ``ETag``."""
    settings = await db.read(partial(service.get_settings, principal=principal))
    response.headers["ETag"] = etag(settings.version)
    return settings


@router.put("", responses=_PRECONDITIONS)
async def replace_organisation(
    data: OrganisationSettingsUpdate,
    principal: AdminDep,
    db: DbDep,
    response: Response,
    if_match: Annotated[str | None, Header(alias="If-Match", max_length=200)] = None,
) -> OrganisationSettings:
    """Replace the settings (``If-Match`` with the current ``ETag``)."""
    settings = await db.write(
        partial(service.replace_settings, principal=principal, if_match=if_match, data=data)
    )
    response.headers["ETag"] = etag(settings.version)
    return settings
