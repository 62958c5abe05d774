"""HTTP routes for patients."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import Response

from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.auth.dependencies import staff_principal
from kap_outcomes.calling import AnyCaller, StaffCaller
from kap_outcomes.creating import Create, Creation, located
from kap_outcomes.http import Cursor, Limit, ResourceId, problems, with_headers
from kap_outcomes.pagination import Page
from kap_outcomes.patients import service
from kap_outcomes.patients.models import (
    EXTERNAL_ID_PATTERN,
    PatientCreate,
    PatientPublic,
    PatientUpdate,
)

router = APIRouter(prefix="/v1/patients", tags=["patients"], route_class=AuditedRoute)


CREATE_PATIENT = Create(PatientCreate, auth=staff_principal)


@router.post(
    "",
    status_code=201,
    response_model=PatientPublic,
    responses=problems(
        (
            409,
            "This external_id or one of these identifiers names another patient already, "
            "or a request with this Idempotency-Key is still in flight",
        )
    ),
)
async def create_patient(
    new: Annotated[Creation[PatientCreate], Depends(CREATE_PATIENT)],
) -> Response:
    return await new.respond(
        partial(service.create_patient, principal=new.principal, data=new.data),
        located("/v1/patients/{id}"),
    )


@router.get("")
async def list_patients(
    staff: StaffCaller,
    external_id: Annotated[
        str | None, Query(min_length=1, max_length=128, pattern=EXTERNAL_ID_PATTERN)
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[PatientPublic]:
    return await staff.read(
        service.list_patients, external_id=external_id, cursor=cursor, limit=limit
    )


@router.get("/{patient_id}", responses=problems(ok=with_headers("ETag")))
async def get_patient(
    patient_id: ResourceId, caller: AnyCaller, response: Response
) -> PatientPublic:
    patient = await caller.read(service.get_patient, patient_id=patient_id)
    response.headers["ETag"] = service.etag(patient)
    return patient


@router.patch(
    "/{patient_id}",
    responses=problems(
        (409, "One of these identifiers names another patient of this organisation"),
        412,
        428,
        ok=with_headers("ETag"),
    ),
)
async def update_patient(
    patient_id: ResourceId,
    data: PatientUpdate,
    staff: StaffCaller,
    response: Response,
    if_match: Annotated[str | None, Header(alias="If-Match", max_length=200)] = None,
) -> PatientPublic:
    """Set `identifiers` (the whole list), `age_group` and/or `conditions` (CMS159); needs
    If-Match with the ETag of GET /v1/patients/{patient_id}: missing is 428, stale is 412."""
    patient = await staff.write(
        service.update_patient, patient_id=patient_id, data=data, if_match=if_match
    )
    response.headers["ETag"] = service.etag(patient)
    return patient
