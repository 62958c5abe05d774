"""All queries on patient summaries and the caseload page."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, func, insert, select, text, true, tuple_, update

from kap_outcomes.caseload.models import MAX_ALERT_SORT_RANK, REST_SORT_RANK, PatientSummary
from kap_outcomes.db import HotStatement, defer_rows
from kap_outcomes.patients.models import Patient
from kap_outcomes.rows import every, table_of

summaries = table_of(PatientSummary)

_patients = table_of(Patient)


# --- keeping summaries current ----------------------------------------------------------

_MARK_STALE = HotStatement(
    update(summaries)
    .where(summaries.c.patient_id == bindparam("patient_id"))
    .values(stale=True, data_version=summaries.c.data_version + 1)
)


def mark_stale(conn: Connection, *, patient_id: str) -> None:
    """The one statement a write runs for the caseload: an UPDATE by primary key, deferred to
    the transaction's end with its other rows (one ``executemany``, one round trip for a
    whole group commit on PostgreSQL; same transaction, so nobody sees the difference)."""
    defer_rows(conn, _MARK_STALE, {"patient_id": patient_id})


def mark_organisation_stale(conn: Connection, *, organisation_id: str) -> None:
    """After a policy change every summary of the organisation must be recomputed."""
    conn.execute(
        update(summaries)
        .where(summaries.c.organisation_id == organisation_id)
        .values(stale=True, data_version=summaries.c.data_version + 1)
    )


def insert_summary(
    conn: Connection, *, organisation_id: str, patient_id: str, at: datetime
) -> None:
    """The row of a new patient: empty, which is right as of its creation (``at``)."""
    conn.execute(
        insert(summaries).values(
            patient_id=patient_id,
            organisation_id=organisation_id,
            stale=True,
            data_version=1,
            sort_rank=REST_SORT_RANK,
            open_alerts=0,
            computed_at=at,
        )
    )


class Stale(NamedTuple):
    """A stale summary: whose, and the data version it was marked stale at."""

    patient_id: str
    data_version: int


def stale_patients(conn: Connection, *, organisation_id: str, limit: int) -> list[Stale]:
    """(patient_id, data_version) of up to ``limit`` stale summaries of the organisation,
    the longest out of date first (the partial index ix_patient_summaries_stale)."""
    rows = conn.execute(
        select(summaries.c.patient_id, summaries.c.data_version)
        .where(summaries.c.organisation_id == organisation_id, summaries.c.stale == true())
        .order_by(summaries.c.computed_at)
        .limit(limit)
    )
    return [Stale._make(row) for row in rows]


def staleness(conn: Connection, *, organisation_id: str) -> tuple[int, datetime | None]:
    """How many summaries of the organisation are stale, and the oldest ``computed_at``
    among them (None when there are none): one aggregate over the partial index."""
    row = conn.execute(
        select(func.count(), func.min(summaries.c.computed_at)).where(
            summaries.c.organisation_id == organisation_id, summaries.c.stale == true()
        )
    ).one()
    return int(row[0]), row[1]


def organisations_with_stale(conn: Connection, *, more_than: int, limit: int) -> list[str]:
    """Organisations with more than ``more_than`` stale summaries (the background refresh's
    work; fewer are left to the next caseload read)."""
    rows = conn.execute(
        select(summaries.c.organisation_id)
        .where(summaries.c.stale == true())
        .group_by(summaries.c.organisation_id)
        .having(func.count() > more_than)
        .limit(limit)
    ).all()
    return [row[0] for row in rows]


# --- one refresh at a time per organisation ---------------------------------------------


def lease_key(organisation_id: str) -> int:
    """The PostgreSQL advisory lock key of an organisation's refresh (64 bits, signed)."""
    digest = hashlib.blake2b(f"kap-caseload:{organisation_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def try_lease(conn: Connection, *, organisation_id: str) -> bool:
    """Take the organisation's refresh lease on this connection, without waiting.

    On PostgreSQL a session-level advisory lock: held until :func:`end_lease` or until the
    connection ends (a worker that dies releases it with its connection). SQLite runs one
    process, whose worker refreshes one organisation at a time: always granted.
    """
    if conn.dialect.name != "postgresql":
        return True
    taken = conn.execute(
        text("SELECT pg_try_advisory_lock(:key)"), {"key": lease_key(organisation_id)}
    ).scalar()
    return bool(taken)


def end_lease(conn: Connection, *, organisation_id: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": lease_key(organisation_id)})


def store_summaries(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Write recomputed summaries; a row whose patient was written to since is left stale."""
    if not rows:
        return
    statement = (
        update(summaries)
        .where(
            summaries.c.patient_id == bindparam("b_patient_id"),
            summaries.c.data_version == bindparam("b_data_version"),
        )
        .values({name: bindparam(name) for name in rows[0] if not name.startswith("b_")})
    )
    conn.execute(statement, list(rows))


# --- the caseload page ------------------------------------------------------------------


def caseload_page(
    conn: Connection,
    *,
    organisation_id: str,
    booster_status: str | None,
    open_alerts_only: bool,
    after: tuple[int, str] | None,
    limit: int,
) -> list[PatientSummary]:
    """One page in caseload order (sort_rank, patient_id): one indexed query.

    ix_patient_summaries_org_rank serves the page and the alert filter,
    ix_patient_summaries_org_status_rank the booster_status filter: neither sorts nor scans
    the organisation.
    """
    s = summaries.c
    query = select(summaries).where(s.organisation_id == organisation_id)
    if booster_status is not None:
        query = query.where(s.booster_status == booster_status)
    if open_alerts_only:  # unresolved alerts are exactly ranks 0-2: an index range
        query = query.where(s.sort_rank <= MAX_ALERT_SORT_RANK)
    if after is not None:  # a row-value comparison: an index range seek, however deep
        query = query.where(tuple_(s.sort_rank, s.patient_id) > tuple_(*after))
    return every(conn, PatientSummary, query.order_by(s.sort_rank, s.patient_id).limit(limit))


def external_ids(conn: Connection, patient_ids: Sequence[str]) -> dict[str, str]:
    """The external ids of one page's patients (a second query rather than a join, so that
    no planner statistics can turn the page into a scan of the patients table)."""
    if not patient_ids:
        return {}
    rows = conn.execute(
        select(_patients.c.id, _patients.c.external_id).where(_patients.c.id.in_(list(patient_ids)))
    ).all()
    return {row.id: row.external_id for row in rows}
