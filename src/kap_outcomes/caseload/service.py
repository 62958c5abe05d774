"""The caseload: every patient of the organisation, the ones who need attention first.

Sorting needs every patient's status, so the caseload reads `patient_summaries` (one row per
patient, one indexed query per page) instead of computing each patient on read. Keeping the
rows current is split so that neither the ingest path nor a read pays for an organisation:

- every write that changes a patient's clinical picture (assessment, session, course, alert
  acknowledged or resolved) runs **one** UPDATE by primary key marking the row stale, in its
  own transaction; a policy change marks the whole organisation stale;
- a read recomputes the stale rows itself only when there are few (at most
  ``INLINE_RECOMPUTE``: the patients just written to), so that a write shows on the next read;
- more than that (after a policy change, a bulk load, a burst of writes) is the worker's job
  (:mod:`kap_outcomes.caseload.refresh`): in batches of ``BATCH`` rows, one refresh at a time
  per organisation. Meanwhile a read answers at once from the stored rows and says how fresh
  they are (``stale_count``, ``as_of``).

A recompute reads in a read transaction (a fixed number of queries however many rows, the pure
rules in Python) and stores in one short write, an executemany UPDATE guarded by
``data_version``: a write that raced with it keeps its mark and is picked up next time.
What depends on the clock (PHQ-9 due, days since) is derived on read from stored dates; the
booster status does not depend on the clock (doses and scores cannot lie in the future).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import orjson
from sqlalchemy import Connection

from kap_outcomes.auth.service import Principal
from kap_outcomes.caseload import repository
from kap_outcomes.caseload.models import (
    ALERT_SORT_RANK,
    BOOSTER_SORT_RANK,
    REST_SORT_RANK,
    CaseloadPage,
    CaseloadRow,
    LatestScore,
    PatientSummary,
)
from kap_outcomes.clinical.booster import BoosterStatus
from kap_outcomes.clinical.cadence import phq9_due
from kap_outcomes.clinical.policy import Policy
from kap_outcomes.db import Database, utcnow
from kap_outcomes.errors import FieldProblem, invalid
from kap_outcomes.policy import service as policy_service
from kap_outcomes.signals import service as signals_service
from kap_outcomes.signals.service import PatientData

INLINE_RECOMPUTE = 100
"""A read recomputes the stale rows itself when there are at most this many (about 35 ms of
work); beyond that it answers from the stored rows and leaves them to the worker."""
BATCH = 500
"""Rows per background recompute: one read of four queries and one short write each."""


def summary_values(
    data: PatientData, *, now: datetime, policy: Policy, policy_version: str
) -> dict[str, Any]:
    """The stored summary of one patient (everything but what depends on the clock)."""
    status = signals_service.booster(data, "phq9", now, policy).status
    safety = signals_service.safety(data.alerts)
    rank = ALERT_SORT_RANK.get(safety.level, BOOSTER_SORT_RANK.get(status, REST_SORT_RANK))
    values: dict[str, Any] = {
        "stale": False,
        "sort_rank": rank,
        "booster_status": status,
        "alert_level": None if safety.level == "none" else safety.level,
        "open_alerts": safety.open_alerts,
        "induction_completed_at": signals_service.induction_completed_at(data, policy),
        "policy_version": policy_version,
        "computed_at": now,
    }
    for instrument in ("phq9", "gad7"):
        last = data.scores[instrument][-1] if data.scores[instrument] else None
        values[f"{instrument}_total"] = last.total if last is not None else None
        values[f"{instrument}_severity"] = last.severity if last is not None else None
        values[f"{instrument}_at"] = last.administered_at if last is not None else None
    return values


def recompute_stale(
    conn: Connection, *, organisation_id: str, limit: int = BATCH
) -> list[dict[str, Any]]:
    """Recompute up to ``limit`` stale summaries of the organisation (reads only; stored
    separately with :func:`repository.store_summaries`)."""
    now = utcnow()  # before the rows are read: every write committed earlier is in them
    stale = repository.stale_patients(conn, organisation_id=organisation_id, limit=limit)
    return _recomputed(conn, stale, organisation_id=organisation_id, now=now)


def _recomputed(
    conn: Connection, stale: list[repository.Stale], *, organisation_id: str, now: datetime
) -> list[dict[str, Any]]:
    if not stale:
        return []
    version, policy = policy_service.current_policy(conn, organisation_id=organisation_id)
    loaded = signals_service.load_many(conn, patient_ids=[row.patient_id for row in stale])
    return [
        {
            "b_patient_id": row.patient_id,
            "b_data_version": row.data_version,
            **summary_values(
                loaded.get(row.patient_id) or PatientData(),
                now=now,
                policy=policy,
                policy_version=version,
            ),
        }
        for row in stale
    ]


@dataclass(frozen=True)
class CaseloadQuery:
    """Which page of the caseload: its filters, where it starts and how many rows."""

    booster_status: BoosterStatus | None
    open_alerts_only: bool
    cursor: str | None
    limit: int


def page(conn: Connection, *, principal: Principal, query: CaseloadQuery) -> CaseloadPage:
    now = utcnow()  # before anything is read: the freshness the answer can vouch for
    after = decode_cursor(query.cursor) if query.cursor else None
    limit = query.limit
    _, policy = policy_service.current_policy(conn, organisation_id=principal.organisation_id)
    rows = repository.caseload_page(
        conn,
        organisation_id=principal.organisation_id,
        booster_status=query.booster_status,
        open_alerts_only=query.open_alerts_only,
        after=after,
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    external = repository.external_ids(conn, [r.patient_id for r in rows])
    stale_count, oldest = repository.staleness(conn, organisation_id=principal.organisation_id)
    data = [_row(r, external[r.patient_id], now=now, policy=policy) for r in rows]
    next_cursor = encode_cursor(rows[-1].sort_rank, rows[-1].patient_id) if more else None
    return CaseloadPage(
        data=data,
        next_cursor=next_cursor,
        stale_count=stale_count,
        as_of=now if oldest is None else min(now, oldest),
    )


def _row(row: PatientSummary, external_id: str, *, now: datetime, policy: Policy) -> CaseloadRow:
    due, days_since = phq9_due(
        induction_completed_at=row.induction_completed_at,
        last_phq9_at=row.phq9_at,
        now=now,
        policy=policy,
    )

    def latest(instrument: str) -> LatestScore | None:
        total = getattr(row, f"{instrument}_total")
        if total is None:
            return None
        return LatestScore(
            total=total,
            severity=getattr(row, f"{instrument}_severity"),
            administered_at=getattr(row, f"{instrument}_at"),
        )

    return CaseloadRow(
        patient_id=row.patient_id,
        external_id=external_id,
        phq9=latest("phq9"),
        gad7=latest("gad7"),
        booster_status=row.booster_status or "not_applicable",
        alert_level=row.alert_level or "none",
        open_alerts=row.open_alerts,
        phq9_due=due,
        days_since_last_phq9=days_since,
        policy_version=row.policy_version or policy_service.DEFAULT_VERSION,
    )


async def caseload(db: Database, *, principal: Principal, query: CaseloadQuery) -> CaseloadPage:
    """The page from the stored rows, after recomputing the stale ones only when they are few.

    Unlike other use cases this one takes the Database: with a few stale rows it is three
    units of work (recompute in a read, store in a short write, page in a read), so that no
    computation runs inside the write transaction. With many it is one read: the rows as
    stored, ``stale_count`` saying how many are behind (the worker is on them).
    """
    if query.cursor:
        decode_cursor(query.cursor)  # a bad cursor is a 422 before any work
    read_page = partial(page, principal=principal, query=query)
    organisation_id = principal.organisation_id

    def few_fresh_or_page(conn: Connection) -> list[dict[str, Any]] | CaseloadPage:
        now = utcnow()
        stale = repository.stale_patients(
            conn, organisation_id=organisation_id, limit=INLINE_RECOMPUTE + 1
        )
        if not stale or len(stale) > INLINE_RECOMPUTE:  # fresh, or the worker's job
            return read_page(conn)
        return _recomputed(conn, stale, organisation_id=organisation_id, now=now)

    result = await db.read(few_fresh_or_page)
    if isinstance(result, CaseloadPage):
        return result
    await db.write(partial(repository.store_summaries, rows=result))
    return await db.read(read_page)


def encode_cursor(rank: int, patient_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([rank, patient_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        rank, patient_id = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(rank, int) or not isinstance(patient_id, str) or len(patient_id) > 36:
            raise ValueError("bad cursor")
        return rank, patient_id
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise invalid(
            [FieldProblem(detail="not a cursor this service issued", parameter="cursor")],
            detail="The cursor is not valid.",
        ) from exc
