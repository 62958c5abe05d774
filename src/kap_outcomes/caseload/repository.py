"""All queries on patient summaries and the caseload page."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, true, tuple_, update

from kap_outcomes.caseload.models import PatientSummary
from kap_outcomes.db import HotStatement
from kap_outcomes.patients.models import Patient

summaries = PatientSummary.__table__  # type: ignore[attr-defined]

MAX_ALERT_RANK = 2
"""sort_rank 0, 1, 2: a patient with an unresolved emergency, urgent or review alert."""
_patients = Patient.__table__  # type: ignore[attr-defined]


# --- keeping summaries current ----------------------------------------------------------

_MARK_STALE = HotStatement(
    update(summaries)
    .where(summaries.c.patient_id == bindparam("patient_id"))
    .values(stale=True, data_version=summaries.c.data_version + 1)
)


def mark_stale(conn: Connection, *, patient_id: str) -> None:
    """The one statement a write runs for the caseload: an UPDATE by primary key."""
    _MARK_STALE.run(conn, {"patient_id": patient_id})


def mark_organisation_stale(conn: Connection, *, organisation_id: str) -> None:
    """After a policy change every summary of the organisation must be recomputed."""
    conn.execute(
        update(summaries)
        .where(summaries.c.organisation_id == organisation_id)
        .values(stale=True, data_version=summaries.c.data_version + 1)
    )


def insert_summary(conn: Connection, *, organisation_id: str, patient_id: str) -> None:
    conn.execute(
        insert(summaries).values(
            patient_id=patient_id,
            organisation_id=organisation_id,
            stale=True,
            data_version=1,
            sort_rank=5,
            open_alerts=0,
        )
    )


def stale_patients(conn: Connection, *, organisation_id: str) -> list[Any]:
    """(patient_id, data_version) of every stale summary of the organisation."""
    return list(
        conn.execute(
            select(summaries.c.patient_id, summaries.c.data_version).where(
                summaries.c.organisation_id == organisation_id, summaries.c.stale == true()
            )
        ).all()
    )


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
) -> list[Any]:
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
        query = query.where(s.sort_rank <= MAX_ALERT_RANK)
    if after is not None:  # a row-value comparison: an index range seek, however deep
        query = query.where(tuple_(s.sort_rank, s.patient_id) > tuple_(*after))
    return list(conn.execute(query.order_by(s.sort_rank, s.patient_id).limit(limit)).all())


def external_ids(conn: Connection, patient_ids: Sequence[str]) -> dict[str, str]:
    """The external ids of one page's patients (a second query rather than a join, so that
    no planner statistics can turn the page into a scan of the patients table)."""
    if not patient_ids:
        return {}
    rows = conn.execute(
        select(_patients.c.id, _patients.c.external_id).where(_patients.c.id.in_(list(patient_ids)))
    ).all()
    return {row.id: row.external_id for row in rows}
