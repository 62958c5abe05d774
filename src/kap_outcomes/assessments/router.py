"""HTTP routes for assessments."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from kap_outcomes.assessments import corrections, service
from kap_outcomes.assessments.models import (
    AssessmentAmend,
    AssessmentCreate,
    AssessmentHistory,
    AssessmentPublic,
    AssessmentRetract,
)
from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.calling import AnyCaller, PrincipalRead, StaffChange
from kap_outcomes.clinical.instruments import Instrument
from kap_outcomes.creating import Create, Creation, located
from kap_outcomes.http import Cursor, Limit, ResourceId, problems, with_headers
from kap_outcomes.pagination import Page
from kap_outcomes.timing import Timestamp

router = APIRouter(prefix="/v1", tags=["assessments"], route_class=AuditedRoute)


SUBMIT = Create(AssessmentCreate, path_ids=("patient_id",))


@router.post(
    "/patients/{patient_id}/assessments",
    status_code=201,
    response_model=AssessmentPublic,
    responses={201: with_headers("ETag")},
)
async def submit_assessment(
    new: Annotated[Creation[AssessmentCreate], Depends(SUBMIT)],
) -> Response:
    """Submit a PHQ-9, GAD-7 or C-SSRS screener; safety alerts open in the same transaction."""
    return await new.respond(
        partial(
            service.submit_assessment,
            principal=new.principal,
            patient_id=new.ids["patient_id"],
            data=new.data,
        ),
        located("/v1/assessments/{id}", versioned=True),
    )


@router.get("/patients/{patient_id}/assessments")
async def list_assessments(
    patient_id: ResourceId,
    caller: AnyCaller,
    instrument: Instrument | None = None,
    since: Annotated[Timestamp | None, Query()] = None,
    until: Annotated[Timestamp | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[AssessmentPublic]:
    return await caller.read(
        service.list_assessments,
        patient_id=patient_id,
        instrument=instrument,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )


@router.get("/assessments/{assessment_id}", responses=problems(ok=with_headers("ETag")))
async def get_assessment(assessment_id: ResourceId, versions: PrincipalRead) -> AssessmentPublic:
    """The current version, with its ``ETag`` (send it as ``If-Match`` to correct it)."""
    return await versions.read(service.get_assessment, assessment_id=assessment_id)


PRECONDITIONS = problems(
    (409, "The assessment was retracted (entered in error)"),
    412,
    428,
    ok=with_headers("ETag"),
)


@router.post("/assessments/{assessment_id}/amend", responses=PRECONDITIONS)
async def amend_assessment(
    assessment_id: ResourceId, data: AssessmentAmend, change: StaffChange
) -> AssessmentPublic:
    """Record corrected answers as a new version (scored again, safety re-evaluated)."""
    return await change.write(corrections.amend_assessment, assessment_id=assessment_id, data=data)


@router.post("/assessments/{assessment_id}/retract", responses=PRECONDITIONS)
async def retract_assessment(
    assessment_id: ResourceId, data: AssessmentRetract, change: StaffChange
) -> AssessmentPublic:
    """Mark the assessment entered in error; it leaves trends and signals, its history stays."""
    return await change.write(
        corrections.retract_assessment, assessment_id=assessment_id, data=data
    )


@router.get("/assessments/{assessment_id}/history")
async def assessment_history(assessment_id: ResourceId, caller: AnyCaller) -> AssessmentHistory:
    """Every version, oldest first: what was recorded, when, by which token and why."""
    return await caller.read(corrections.assessment_history, assessment_id=assessment_id)
