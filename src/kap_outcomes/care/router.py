"""HTTP routes for courses and sessions."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.auth.dependencies import DbDep, StaffDep
from kap_outcomes.care import service
from kap_outcomes.care.models import CourseCreate, CoursePublic, SessionCreate, SessionPublic
from kap_outcomes.http import IdempotencyKey, ResourceId, create_once
from kap_outcomes.pagination import Cursor, Limit, Page

router = APIRouter(prefix="/v1/patients/{patient_id}", tags=["care"], route_class=AuditedRoute)


def course_location(course: dict[str, Any]) -> dict[str, str]:
    return {"Location": f"/v1/patients/{course['patient_id']}/courses/{course['id']}"}


def session_location(session: dict[str, Any]) -> dict[str, str]:
    return {"Location": f"/v1/patients/{session['patient_id']}/sessions/{session['id']}"}


@router.post("/courses", status_code=201, response_model=CoursePublic)
async def open_course(
    patient_id: ResourceId,
    data: CourseCreate,
    principal: StaffDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    create = partial(service.open_course, principal=principal, patient_id=patient_id, data=data)
    return await create_once(
        request,
        principal=principal,
        data=data,
        key=idempotency_key,
        create=create,
        created_headers=course_location,
    )


@router.get("/courses")
async def list_courses(
    patient_id: ResourceId, principal: StaffDep, db: DbDep
) -> list[CoursePublic]:
    return await db.read(partial(service.list_courses, principal=principal, patient_id=patient_id))


@router.get("/courses/{course_id}")
async def get_course(
    patient_id: ResourceId, course_id: ResourceId, principal: StaffDep, db: DbDep
) -> CoursePublic:
    """One course (what a course's ``Location`` names)."""
    return await db.read(
        partial(service.get_course, principal=principal, patient_id=patient_id, course_id=course_id)
    )


@router.post("/sessions", status_code=201, response_model=SessionPublic)
async def record_session(
    patient_id: ResourceId,
    data: SessionCreate,
    principal: StaffDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    create = partial(service.record_session, principal=principal, patient_id=patient_id, data=data)
    return await create_once(
        request,
        principal=principal,
        data=data,
        key=idempotency_key,
        create=create,
        created_headers=session_location,
    )


@router.get("/sessions")
async def list_sessions(
    patient_id: ResourceId,
    principal: StaffDep,
    db: DbDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[SessionPublic]:
    return await db.read(
        partial(
            service.list_sessions,
            principal=principal,
            patient_id=patient_id,
            cursor=cursor,
            limit=limit,
        )
    )


@router.get("/sessions/{session_id}")
async def get_session(
    patient_id: ResourceId, session_id: ResourceId, principal: StaffDep, db: DbDep
) -> SessionPublic:
    """One session (what a session's ``Location`` names)."""
    return await db.read(
        partial(
            service.get_session, principal=principal, patient_id=patient_id, session_id=session_id
        )
    )
