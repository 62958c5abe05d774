"""HTTP routes for courses and sessions."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.auth.dependencies import staff_principal
from kap_outcomes.calling import StaffCaller, StaffChange, StaffRead
from kap_outcomes.care import corrections, service
from kap_outcomes.care.models import (
    CourseCreate,
    CoursePublic,
    SessionAmend,
    SessionCreate,
    SessionHistory,
    SessionPublic,
    SessionRetract,
)
from kap_outcomes.creating import Create, Creation, located
from kap_outcomes.http import Cursor, Limit, ResourceId, problems, with_headers
from kap_outcomes.pagination import Page

router = APIRouter(prefix="/v1/patients/{patient_id}", tags=["care"], route_class=AuditedRoute)


OPEN_COURSE = Create(CourseCreate, auth=staff_principal, path_ids=("patient_id",))
RECORD_SESSION = Create(SessionCreate, auth=staff_principal, path_ids=("patient_id",))


@router.post("/courses", status_code=201, response_model=CoursePublic)
async def open_course(
    new: Annotated[Creation[CourseCreate], Depends(OPEN_COURSE)],
) -> Response:
    return await new.respond(
        partial(
            service.open_course,
            principal=new.principal,
            patient_id=new.ids["patient_id"],
            data=new.data,
        ),
        located("/v1/patients/{patient_id}/courses/{id}"),
    )


@router.get("/courses")
async def list_courses(patient_id: ResourceId, staff: StaffCaller) -> list[CoursePublic]:
    return await staff.read(service.list_courses, patient_id=patient_id)


@router.get("/courses/{course_id}")
async def get_course(
    patient_id: ResourceId, course_id: ResourceId, staff: StaffCaller
) -> CoursePublic:
    """One course (what a course's ``Location`` names)."""
    return await staff.read(service.get_course, patient_id=patient_id, course_id=course_id)


@router.post(
    "/sessions",
    status_code=201,
    response_model=SessionPublic,
    responses=problems(
        (
            409,
            "A dose within 60 minutes of another (`duplicate-session`), or a retry in flight",
        ),
    )
    | {201: with_headers("ETag")},
)
async def record_session(
    new: Annotated[Creation[SessionCreate], Depends(RECORD_SESSION)],
) -> Response:
    return await new.respond(
        partial(
            service.record_session,
            principal=new.principal,
            patient_id=new.ids["patient_id"],
            data=new.data,
        ),
        located("/v1/patients/{patient_id}/sessions/{id}", versioned=True),
    )


@router.get("/sessions")
async def list_sessions(
    patient_id: ResourceId, staff: StaffCaller, limit: Limit = 50, cursor: Cursor = None
) -> Page[SessionPublic]:
    return await staff.read(
        service.list_sessions, patient_id=patient_id, cursor=cursor, limit=limit
    )


@router.get("/sessions/{session_id}")
async def get_session(
    patient_id: ResourceId, session_id: ResourceId, versions: StaffRead
) -> SessionPublic:
    """One session (what a session's ``Location`` names), with its ``ETag``."""
    return await versions.read(service.get_session, patient_id=patient_id, session_id=session_id)


session_router = APIRouter(prefix="/v1/sessions", tags=["care"], route_class=AuditedRoute)
"""Corrections of a session, addressed by the session alone (as assessments are)."""

PRECONDITIONS: dict[int | str, dict[str, Any]] = problems(
    (409, "The amended dose lies within 60 minutes of another (`duplicate-session`)"),
    412,
    428,
    ok=with_headers("ETag"),
)


@session_router.get("/{session_id}", responses=problems(ok=with_headers("ETag")))
async def get_session_by_id(session_id: ResourceId, versions: StaffRead) -> SessionPublic:
    """The current version, with its ``ETag`` (send it as ``If-Match`` to correct it)."""
    return await versions.read(corrections.get_session, session_id=session_id)


@session_router.post("/{session_id}/amend", responses=PRECONDITIONS)
async def amend_session(
    session_id: ResourceId, data: SessionAmend, change: StaffChange
) -> SessionPublic:
    """Record the session as it should have been (time, kind, dose) as a new version; every
    signal follows it."""
    return await change.write(corrections.amend_session, session_id=session_id, data=data)


@session_router.post("/{session_id}/retract", responses=PRECONDITIONS)
async def retract_session(
    session_id: ResourceId, data: SessionRetract, change: StaffChange
) -> SessionPublic:
    """Mark the session entered in error; it leaves induction and every signal, its history
    stays."""
    return await change.write(corrections.retract_session, session_id=session_id, data=data)


@session_router.get("/{session_id}/history")
async def session_history(session_id: ResourceId, staff: StaffCaller) -> SessionHistory:
    """Every version, oldest first: what was recorded, when, by which token and why."""
    return await staff.read(corrections.session_history, session_id=session_id)
