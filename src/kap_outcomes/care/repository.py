"""All queries on courses and sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update

from kap_outcomes.care.models import CareSession, Course

courses = Course.__table__  # type: ignore[attr-defined]
sessions = CareSession.__table__  # type: ignore[attr-defined]


def active_course(conn: Connection, *, patient_id: str) -> Any | None:
    return conn.execute(
        select(courses)
        .where(courses.c.patient_id == patient_id, courses.c.ended_at.is_(None))
        .order_by(courses.c.started_at.desc())
        .limit(1)
    ).first()


def get_course(conn: Connection, *, patient_id: str, course_id: str) -> Any | None:
    return conn.execute(
        select(courses).where(courses.c.id == course_id, courses.c.patient_id == patient_id)
    ).first()


def list_courses(conn: Connection, *, patient_id: str) -> list[Any]:
    return list(
        conn.execute(
            select(courses)
            .where(courses.c.patient_id == patient_id)
            .order_by(courses.c.started_at, courses.c.id)
        ).all()
    )


def close_active_courses(conn: Connection, *, patient_id: str, at: datetime) -> None:
    conn.execute(
        update(courses)
        .where(courses.c.patient_id == patient_id, courses.c.ended_at.is_(None))
        .values(ended_at=at)
    )


def insert_course(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(courses).values(**values))


def get_session(conn: Connection, *, patient_id: str, session_id: str) -> Any | None:
    return conn.execute(
        select(sessions).where(sessions.c.id == session_id, sessions.c.patient_id == patient_id)
    ).first()


def insert_session(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(sessions).values(**values))


def page_sessions(
    conn: Connection, *, patient_id: str, after: tuple[datetime, str] | None, limit: int
) -> list[Any]:
    query = select(sessions).where(sessions.c.patient_id == patient_id)
    if after is not None:
        at, row_id = after
        query = query.where(
            or_(
                sessions.c.occurred_at > at,
                and_(sessions.c.occurred_at == at, sessions.c.id > row_id),
            )
        )
    query = query.order_by(sessions.c.occurred_at, sessions.c.id).limit(limit)
    return list(conn.execute(query).all())
