"""All queries on courses and sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update

from kap_outcomes.care.models import CareSession, CareSessionRevision, Course, SessionStatus
from kap_outcomes.rows import table_of

courses = table_of(Course)
sessions = table_of(CareSession)


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


revisions = table_of(CareSessionRevision)
_REVISION_COLUMNS = [c.name for c in revisions.columns if c.name not in ("id", "session_id")]


def session_by_id(conn: Connection, *, organisation_id: str, session_id: str) -> Any | None:
    return conn.execute(
        select(sessions).where(
            sessions.c.id == session_id, sessions.c.organisation_id == organisation_id
        )
    ).first()


def session_for_update(conn: Connection, *, organisation_id: str, session_id: str) -> Any | None:
    """The current version, locked until the transaction ends (PostgreSQL)."""
    return conn.execute(
        select(sessions)
        .where(sessions.c.id == session_id, sessions.c.organisation_id == organisation_id)
        .with_for_update()
    ).first()


def doses_near(
    conn: Connection, *, patient_id: str, start: datetime, end: datetime, kinds: list[str]
) -> list[Any]:
    """The patient's standing (not retracted) doses with start < occurred_at < end."""
    return list(
        conn.execute(
            select(sessions)
            .where(
                sessions.c.patient_id == patient_id,
                sessions.c.kind.in_(kinds),
                sessions.c.status != SessionStatus.entered_in_error.value,
                sessions.c.occurred_at > start,
                sessions.c.occurred_at < end,
            )
            .order_by(sessions.c.occurred_at, sessions.c.id)
        ).all()
    )


def keep_session_revision(conn: Connection, *, current: Any, revision_id: str) -> None:
    """Copy the current version, unchanged, into the history before it is superseded."""
    values = {name: getattr(current, name) for name in _REVISION_COLUMNS}
    conn.execute(insert(revisions).values(id=revision_id, session_id=current.id, **values))


def replace_session(
    conn: Connection, *, session_id: str, expected_version: int, values: dict[str, Any]
) -> bool:
    """Write the next version; False if another correction got there first."""
    result = conn.execute(
        update(sessions)
        .where(sessions.c.id == session_id, sessions.c.version == expected_version)
        .values(**values)
    )
    return result.rowcount == 1


def session_revisions(conn: Connection, *, session_id: str) -> list[Any]:
    return list(
        conn.execute(
            select(revisions)
            .where(revisions.c.session_id == session_id)
            .order_by(revisions.c.version)
        ).all()
    )


def dose_sessions(conn: Connection, *, patient_id: str) -> list[Any]:
    """(kind, occurred_at) of the patient's dosing and booster sessions, every course, oldest
    first: the current version of each that was not retracted (what charts mark)."""
    return list(
        conn.execute(
            select(sessions.c.kind, sessions.c.occurred_at)
            .where(
                sessions.c.patient_id == patient_id,
                sessions.c.kind.in_(("dosing", "booster")),
                sessions.c.status != SessionStatus.entered_in_error.value,
            )
            .order_by(sessions.c.occurred_at, sessions.c.id)
        ).all()
    )
