"""All queries on courses and sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Select, insert, select, update

from kap_outcomes.care.models import CareSession, CareSessionRevision, Course, SessionStatus
from kap_outcomes.rows import after_key, every, first, table_of
from kap_outcomes.versions import Versioned

courses = table_of(Course)
sessions = table_of(CareSession)
versioned_sessions = Versioned(CareSession, CareSessionRevision, "session_id")


def active_course(conn: Connection, *, patient_id: str) -> Course | None:
    return first(
        conn,
        Course,
        select(courses)
        .where(courses.c.patient_id == patient_id, courses.c.ended_at.is_(None))
        .order_by(courses.c.started_at.desc())
        .limit(1),
    )


def get_course(conn: Connection, *, patient_id: str, course_id: str) -> Course | None:
    query = select(courses).where(courses.c.id == course_id, courses.c.patient_id == patient_id)
    return first(conn, Course, query)


def list_courses(conn: Connection, *, patient_id: str) -> list[Course]:
    query = select(courses).where(courses.c.patient_id == patient_id)
    return every(conn, Course, after_key(query, courses.c.started_at, courses.c.id, None))


def close_active_courses(conn: Connection, *, patient_id: str, at: datetime) -> None:
    conn.execute(
        update(courses)
        .where(courses.c.patient_id == patient_id, courses.c.ended_at.is_(None))
        .values(ended_at=at)
    )


def insert_course(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(courses).values(**values))


def get_session(conn: Connection, *, patient_id: str, session_id: str) -> CareSession | None:
    query = select(sessions).where(sessions.c.id == session_id, sessions.c.patient_id == patient_id)
    return first(conn, CareSession, query)


def insert_session(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(sessions).values(**values))


def page_sessions(
    conn: Connection, *, patient_id: str, after: tuple[datetime, str] | None, limit: int
) -> list[CareSession]:
    query = select(sessions).where(sessions.c.patient_id == patient_id)
    query = after_key(query, sessions.c.occurred_at, sessions.c.id, after)
    return every(conn, CareSession, query.limit(limit))


def doses_near(
    conn: Connection, *, patient_id: str, start: datetime, end: datetime, kinds: list[str]
) -> list[CareSession]:
    """The patient's standing (not retracted) doses with start < occurred_at < end."""
    query = select(sessions).where(
        sessions.c.patient_id == patient_id,
        sessions.c.kind.in_(kinds),
        sessions.c.status != SessionStatus.entered_in_error.value,
        sessions.c.occurred_at > start,
        sessions.c.occurred_at < end,
    )
    return every(conn, CareSession, after_key(query, sessions.c.occurred_at, sessions.c.id, None))


class DoseAt(NamedTuple):
    kind: str
    occurred_at: datetime


def dose_sessions(conn: Connection, *, patient_id: str) -> list[DoseAt]:
    """(kind, occurred_at) of the patient's dosing and booster sessions, every course, oldest
    first: the current version of each that was not retracted (what charts mark)."""
    query: Select[str, datetime] = select(sessions.c.kind, sessions.c.occurred_at).where(
        sessions.c.patient_id == patient_id,
        sessions.c.kind.in_(("dosing", "booster")),
        sessions.c.status != SessionStatus.entered_in_error.value,
    )
    rows = conn.execute(query.order_by(sessions.c.occurred_at, sessions.c.id))
    return [DoseAt(kind, at) for kind, at in rows]
