"""HTTP routes for patients."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query

from kap_outcomes.auth.dependencies import DbDep, PrincipalDep, StaffDep
from kap_outcomes.http import PROBLEMS, ResourceId
from kap_outcomes.pagination import Cursor, Limit, Page
from kap_outcomes.patients import service
from kap_outcomes.patients.models import EXTERNAL_ID_PATTERN, PatientCreate, PatientPublic

router = APIRouter(prefix="/v1/patients", tags=["patients"], responses=PROBLEMS)


@router.post("", status_code=201, responses={409: PROBLEMS[404] | {"description": "Duplicate"}})
async def create_patient(data: PatientCreate, principal: StaffDep, db: DbDep) -> PatientPublic:
    return await db.write(partial(service.create_patient, principal=principal, data=data))


@router.get("")
async def list_patients(
    principal: StaffDep,
    db: DbDep,
    external_id: Annotated[
        str | None, Query(min_length=1, max_length=128, pattern=EXTERNAL_ID_PATTERN)
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[PatientPublic]:
    return await db.read(
        partial(
            service.list_patients,
            principal=principal,
            external_id=external_id,
            cursor=cursor,
            limit=limit,
        )
    )


@router.get("/{patient_id}")
async def get_patient(patient_id: ResourceId, principal: PrincipalDep, db: DbDep) -> PatientPublic:
    return await db.read(partial(service.get_patient, principal=principal, patient_id=patient_id))
