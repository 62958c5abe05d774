"""HTTP routes for assessments."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime

from kap_outcomes.assessments import service
from kap_outcomes.assessments.models import AssessmentCreate, AssessmentPublic
from kap_outcomes.auth.dependencies import DbDep, PrincipalDep, current_principal
from kap_outcomes.clinical.instruments import Instrument
from kap_outcomes.db import Database
from kap_outcomes.http import (
    PROBLEMS,
    IdempotencyKey,
    ResourceId,
    created,
    json_body,
    json_request_body,
    outcome_response,
)
from kap_outcomes.idempotency.service import check_key, fingerprint, idempotent
from kap_outcomes.pagination import Cursor, Limit, Page
from kap_outcomes.timing import ToUTC

router = APIRouter(prefix="/v1", tags=["assessments"], responses=PROBLEMS)


@router.post(
    "/patients/{patient_id}/assessments",
    status_code=201,
    response_model=AssessmentPublic,
    responses={415: PROBLEMS[415]},
    openapi_extra=json_request_body(AssessmentCreate),
)
async def submit_assessment(
    patient_id: ResourceId, request: Request, idempotency_key: IdempotencyKey = None
) -> Response:
    """Submit a PHQ-9, GAD-7 or C-SSRS screener; safety alerts open in the same transaction."""
    # The busiest route authenticates and parses its body itself rather than through FastAPI
    # dependencies, which the ingest benchmark showed cost more than the database work
    # (bench/README.md). Same checks, same order (401 before 422), same problem documents.
    principal = await current_principal(request)
    key = check_key(idempotency_key)
    data = await json_body(request, AssessmentCreate)
    db: Database = request.app.state.db
    submit = partial(
        service.submit_assessment, principal=principal, patient_id=patient_id, data=data
    )
    if key is None:  # the common case: no second serialization, no lookup
        return created(await db.write(submit))
    return outcome_response(
        await db.write(
            idempotent(
                submit,
                principal=principal,
                key=key,
                fingerprint=fingerprint(request.method, request.url.path, data),
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
