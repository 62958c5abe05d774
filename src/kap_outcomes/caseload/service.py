"""The caseload: every patient of the organisation, the ones who need attention first.

Sorting needs every patient's status, so the caseload reads `patient_summaries` (one row per
patient, one indexed query per page) instead of computing each patient on read. Keeping the
rows current is split so that the ingest path stays cheap:

- every write that changes a patient's clinical picture (assessment, session, course, alert
  acknowledged or resolved) runs **one** UPDATE by primary key marking the row stale, in its
  own transaction; a policy change marks the whole organisation stale;
- the caseload first recomputes the organisation's stale rows in bulk: a fixed number of
  queries (stale ids as a subquery) however many they are, the pure rules in Python, then
  one executemany UPDATE in a short write transaction. The computation itself runs in a read
  transaction, so a large recompute (after a policy change) never holds the write lock.

What depends on the clock (PHQ-9 due, days since) is derived on read from stored dates; the
booster status does not depend on the clock (doses and scores cannot lie in the future).
A write that races with a recompute bumps `data_version`, so the recompute does not clear
it: the row stays stale and the next read recomputes it.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from functools import partial
from typing import Any

import orjson
from sqlalchemy import Connection

from kap_outcomes.auth.service import Principal
from kap_outcomes.caseload import repository
from kap_outcomes.caseload.models import CaseloadRow, LatestScore
from kap_outcomes.clinical.booster import BoosterStatus
from kap_outcomes.clinical.cadence import phq9_due
from kap_outcomes.clinical.policy import Policy
from kap_outcomes.db import Database, utcnow
from kap_outcomes.errors import FieldProblem, invalid
from kap_outcomes.pagination import Page
from kap_outcomes.policy import service as policy_service
from kap_outcomes.signals import service as signals_service
from kap_outcomes.signals.service import ALERT_RANK, PatientData

BOOSTER_RANK: dict[str, int] = {"consider_booster": 3, "watch": 4}
REST_RANK = 5
"""Caseload order: unresolved alerts first (emergency 0, urgent 1, review 2), then
consider_booster, then watch, then everyone else; ties by patient id."""


def summary_values(
    data: PatientData, *, now: datetime, policy: Policy, policy_version: str
) -> dict[str, Any]:
    """The stored summary of one patient (everything but what depends on the clock)."""
    status = signals_service.booster(data, "phq9", now, policy).status
    safety = signals_service.safety(data.alerts)
    rank = ALERT_RANK.get(safety.level, BOOSTER_RANK.get(status, REST_RANK))
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


def recompute_stale(conn: Connection, *, organisation_id: str) -> list[dict[str, Any]]:
    """Recompute every stale summary of the organisation (reads only; stored separately)."""
    stale = repository.stale_patients(conn, organisation_id=organisation_id)
    if not stale:
        return []
    version, policy = policy_service.current_policy(conn, organisation_id=organisation_id)
    loaded = signals_service.load_many(conn, patient_ids=[row.patient_id for row in stale])
    now = utcnow()
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


def page(
    conn: Connection,
    *,
    principal: Principal,
    booster_status: BoosterStatus | None,
    open_alerts_only: bool,
    cursor: str | None,
    limit: int,
) -> Page[CaseloadRow]:
    after = decode_cursor(cursor) if cursor else None
    _, policy = policy_service.current_policy(conn, organisation_id=principal.organisation_id)
    rows = repository.caseload_page(
        conn,
        organisation_id=principal.organisation_id,
        booster_status=booster_status,
        open_alerts_only=open_alerts_only,
        after=after,
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    now = utcnow()
    external = repository.external_ids(conn, [r.patient_id for r in rows])
    data = [_row(r, external[r.patient_id], now=now, policy=policy) for r in rows]
    next_cursor = encode_cursor(rows[-1].sort_rank, rows[-1].patient_id) if more else None
    return Page[CaseloadRow](data=data, next_cursor=next_cursor)


def _row(row: Any, external_id: str, *, now: datetime, policy: Policy) -> CaseloadRow:
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


async def caseload(
    db: Database,
    *,
    principal: Principal,
    booster_status: BoosterStatus | None,
    open_alerts_only: bool,
    cursor: str | None,
    limit: int,
) -> Page[CaseloadRow]:
    """Refresh the stale summaries (computed in a read, stored in one short write), then page.

    Unlike other use cases this one takes the Database: it is three units of work, so that
    the recompute never runs inside the write transaction (see the module docstring).
    """
    if cursor:
        decode_cursor(cursor)  # a bad cursor is a 422 before any work
    read_page = partial(
        page,
        principal=principal,
        booster_status=booster_status,
        open_alerts_only=open_alerts_only,
        cursor=cursor,
        limit=limit,
    )

    def fresh_or_page(conn: Connection) -> list[dict[str, Any]] | Page[CaseloadRow]:
        # Nothing stale (the common case): the page in the same read transaction.
        fresh = recompute_stale(conn, organisation_id=principal.organisation_id)
        return fresh if fresh else read_page(conn)

    result = await db.read(fresh_or_page)
    if isinstance(result, Page):
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
