"""HTTP routes for the organisation's settings (admin only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.calling import AdminChange, AdminRead
from kap_outcomes.http import problems, with_headers
from kap_outcomes.organisation import service
from kap_outcomes.organisation.models import (
    OrganisationSettings,
    OrganisationSettingsUpdate,
)

router = APIRouter(prefix="/v1/organisation", tags=["organisation"], route_class=AuditedRoute)

_PRECONDITIONS: dict[int | str, dict[str, Any]] = problems(412, 428, ok=with_headers("ETag"))


@router.get("", responses=problems(ok=with_headers("ETag")))
async def get_organisation(versions: AdminRead) -> OrganisationSettings:
    """The organisation's settings, with their ``ETag``."""
    return await versions.read(service.get_settings)


@router.put("", responses=_PRECONDITIONS)
async def replace_organisation(
    data: OrganisationSettingsUpdate, change: AdminChange
) -> OrganisationSettings:
    """Replace the settings (``If-Match`` with the current ``ETag``)."""
    return await change.write(service.replace_settings, data=data)
