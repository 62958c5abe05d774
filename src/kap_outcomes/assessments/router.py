"""HTTP routes for assessments."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import AwareDatetime

from kap_outcomes.assessments import service
from kap_outcomes.assessments.models import AssessmentCreate, AssessmentPublic
from kap_outcomes.auth.dependencies import DbDep, PrincipalDep
from kap_outcomes.clinical.instruments import Instrument
from kap_outcomes.http import PROBLEMS, ResourceId, created
from kap_outcomes.pagination import Cursor, Limit, Page
from kap_outcomes.timing import ToUTC

router = APIRouter(prefix="/v1", tags=["assessments"], responses=PROBLEMS)


@router.post("/patients/{patient_id}/assessments", status_code=201, response_model=AssessmentPublic)
async def submit_assessment(
    patient_id: ResourceId, data: AssessmentCreate, principal: PrincipalDep, db: DbDep
) -> Response:
    return created(
        await db.write(
            partial(
                service.submit_assessment, principal=principal, patient_id=patient_id, data=data
            )
        )
    )


@router.get("/patients/{patient_id}/assessments")
async def list_assessments(
    patient_id: ResourceId,
    principal: PrincipalDep,
    db: DbDep,
    instrument: Instrument | None = None,
    since: Annotated[Annotated[AwareDatetime, ToUTC] | None, Query()] = None,
    until: Annotated[Annotated[AwareDatetime, ToUTC] | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[AssessmentPublic]:
    return await db.read(
        partial(
            service.list_assessments,
            principal=principal,
            patient_id=patient_id,
            instrument=instrument,
            since=since,
            until=until,
            cursor=cursor,
            limit=limit,
        )
    )


@router.get("/assessments/{assessment_id}")
async def get_assessment(
    assessment_id: ResourceId, principal: PrincipalDep, db: DbDep
) -> AssessmentPublic:
    return await db.read(
        partial(service.get_assessment, principal=principal, assessment_id=assessment_id)
    )
