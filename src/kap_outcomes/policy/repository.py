"""All queries on policy versions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select

from kap_outcomes.policy.models import PolicyVersion
from kap_outcomes.rows import first, table_of, unless_taken

policy_versions = table_of(PolicyVersion)


def latest(conn: Connection, *, organisation_id: str) -> PolicyVersion | None:
    query = select(policy_versions).where(policy_versions.c.organisation_id == organisation_id)
    return first(conn, PolicyVersion, query.order_by(policy_versions.c.version.desc()).limit(1))


def insert_version(conn: Connection, values: dict[str, Any]) -> bool:
    """Insert; False when that version number was taken by a concurrent writer."""
    return unless_taken(conn, insert(policy_versions).values(values))
