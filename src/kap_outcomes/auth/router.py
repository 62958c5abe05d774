"""HTTP routes for tokens and patient app enrollment."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.auth import admin as admin_use_cases
from kap_outcomes.auth import enrollment
from kap_outcomes.auth.dependencies import admin_principal, current_principal
from kap_outcomes.auth.models import (
    Enrolled,
    EnrollmentIssued,
    EnrollmentPublic,
    EnrollRequest,
    Role,
    TokenCreate,
    TokenIssued,
    TokenPublic,
)
from kap_outcomes.auth.service import Principal
from kap_outcomes.calling import AdminCaller, Caller, caller_of
from kap_outcomes.creating import Create, Creation, located
from kap_outcomes.errors import forbidden
from kap_outcomes.http import Cursor, Limit, ResourceId, problems, settings_of
from kap_outcomes.pagination import Page

router = APIRouter(tags=["auth"], route_class=AuditedRoute)


CREATE_TOKEN = Create(TokenCreate, auth=admin_principal, replayable=False)


@router.post("/v1/tokens", status_code=201, response_model=TokenIssued)
async def create_token(new: Annotated[Creation[TokenCreate], Depends(CREATE_TOKEN)]) -> Response:
    """Issue a token of this organisation; its secret is in this response only."""
    return await new.respond(
        partial(admin_use_cases.create_token, principal=new.principal, data=new.data),
        located("/v1/tokens/{id}"),
    )


@router.get("/v1/tokens")
async def list_tokens(
    admin: AdminCaller, limit: Limit = 50, cursor: Cursor = None
) -> Page[TokenPublic]:
    """The organisation's tokens: metadata only, never a secret."""
    return await admin.read(admin_use_cases.list_tokens, cursor=cursor, limit=limit)


@router.get("/v1/tokens/{token_id}")
async def get_token(token_id: ResourceId, admin: AdminCaller) -> TokenPublic:
    """One token's metadata (what a token's ``Location`` names), never its secret."""
    return await admin.read(admin_use_cases.get_token, token_id=token_id)


@router.delete("/v1/tokens/{token_id}", status_code=204)
async def revoke_token(token_id: ResourceId, admin: AdminCaller) -> Response:
    """Revoke a token: it answers 401 from the next request on."""
    await admin.write(admin_use_cases.revoke_token, token_id=token_id)
    return Response(status_code=204)


async def _enroller(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    """Clinicians and admins hand out enrollment codes (not integrations, not patients)."""
    if principal.role not in (Role.admin, Role.clinician):
        raise forbidden()
    return principal


EnrollerCaller = Annotated[Caller, Depends(caller_of(_enroller))]
CREATE_ENROLLMENT: Create[Any] = Create(
    None, auth=_enroller, path_ids=("patient_id",), replayable=False
)


@router.post(
    "/v1/patients/{patient_id}/enrollments", status_code=201, response_model=EnrollmentIssued
)
async def create_enrollment(new: Annotated[Creation[Any], Depends(CREATE_ENROLLMENT)]) -> Response:
    """A single-use code for the patient's app, valid for a few minutes."""
    ttl = timedelta(minutes=settings_of(new.request).enrollment_code_minutes)
    patient_id = new.ids["patient_id"]

    def location(issued: Mapping[str, Any]) -> dict[str, str]:
        return {"Location": f"/v1/patients/{patient_id}/enrollments/{issued['id']}"}

    return await new.respond(
        partial(
            enrollment.create_enrollment, principal=new.principal, patient_id=patient_id, ttl=ttl
        ),
        location,
    )


@router.get("/v1/patients/{patient_id}/enrollments/{enrollment_id}")
async def get_enrollment(
    patient_id: ResourceId, enrollment_id: ResourceId, enroller: EnrollerCaller
) -> EnrollmentPublic:
    """Whether an enrollment was used and until when it is valid; never its code."""
    return await enroller.read(
        enrollment.get_enrollment, patient_id=patient_id, enrollment_id=enrollment_id
    )


ENROLL: Create[EnrollRequest] = Create(EnrollRequest, auth=None, replayable=False)


@router.post(
    "/v1/auth/enroll",
    status_code=201,
    response_model=Enrolled,
    responses=problems((400, "Unknown, used or expired code")),
)
async def enroll(new: Annotated[Creation[EnrollRequest], Depends(ENROLL)]) -> Response:
    """Exchange an enrollment code for the app's own patient token (no token needed)."""
    return await new.respond(
        partial(enrollment.enroll, code=new.data.code), located("/v1/tokens/{token_id}")
    )
