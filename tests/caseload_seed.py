"""Thousands of patients inserted in bulk (through the API it would take minutes).

Each patient has one course: a PHQ-9 baseline of 22 on day 0, six induction doses (days 1–12)
and a PHQ-9 of 6 on day 13 (the nadir). Then, on day 34, a PHQ-9 of 10 for a "riser" (4
points above the nadir) or of 6 for a "steady" patient. Hand computed with the booster rules
(docs/clinical-rules.md, section 5): with the default policy (rise from nadir >= 5 puts a
patient on watch) both are `stable` (10 is far from losing half of the 16 points gained, and
two points make no trend); with `rise_from_nadir: 4` a riser is on `watch`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert

from kap_outcomes.assessments.models import Assessment
from kap_outcomes.care.models import CareSession, Course
from kap_outcomes.caseload.models import PatientSummary
from kap_outcomes.clinical.instruments import Instrument
from kap_outcomes.clinical.scoring import score
from kap_outcomes.db import new_id
from kap_outcomes.patients.models import Patient

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=60)
DOSE_DAYS = (1, 3, 5, 8, 10, 12)


def _items(total: int) -> list[int]:
    rest, items = total, []
    for _ in range(8):
        items.append(min(3, rest))
        rest -= items[-1]
    return [*items, 0]


def seed(conn: Connection, *, organisation_id: str, patients: int) -> list[str]:
    """Insert the patients, every other one a riser; returns the ids of the risers. Every
    summary starts stale."""
    rows: dict[Any, list[dict[str, Any]]] = {
        Patient: [], PatientSummary: [], Course: [], CareSession: [], Assessment: []
    }  # fmt: skip
    risen: list[str] = []

    def phq9(pid: str, course_id: str, total: int, day: int) -> None:
        items = _items(total)
        result = score(Instrument.PHQ9, items)
        at = T0 + timedelta(days=day)
        rows[Assessment].append(
            {"id": new_id(), "organisation_id": organisation_id, "patient_id": pid,
             "course_id": course_id, "session_id": None, "instrument": "phq9", "items": items,
             "difficulty": None, "administered_at": at, "recorded_at": at,
             "source": "clinician", "valid": result.valid, "total": result.total,
             "raw_total": result.raw_total, "prorated": result.prorated,
             "missing_items": result.missing_items,
             "severity": result.severity.value if result.severity else None, "risk": None,
             "subscores": dict(result.subscores), "flags": list(result.flags), "version": 1,
             "status": "final", "version_at": at, "recorded_by": None, "version_reason": None}
        )  # fmt: skip

    for n in range(patients):
        pid, course_id = new_id(), new_id()
        rows[Patient].append(
            {"id": pid, "organisation_id": organisation_id, "external_id": f"seed-{pid}",
             "created_at": T0}
        )  # fmt: skip
        rows[PatientSummary].append(
            {"patient_id": pid, "organisation_id": organisation_id, "stale": True,
             "data_version": 1, "sort_rank": 5, "open_alerts": 0, "computed_at": T0}
        )  # fmt: skip
        rows[Course].append(
            {"id": course_id, "organisation_id": organisation_id, "patient_id": pid,
             "label": None, "induction_doses": 6, "started_at": T0, "ended_at": None,
             "created_at": T0}
        )  # fmt: skip
        for day in DOSE_DAYS:
            at = T0 + timedelta(days=day)
            rows[CareSession].append(
                {"id": new_id(), "organisation_id": organisation_id, "patient_id": pid,
                 "course_id": course_id, "kind": "dosing", "occurred_at": at,
                 "dose_route": "iv", "dose_amount_mg": 35.0, "created_at": at, "version": 1,
                 "status": "final", "version_at": at, "recorded_by": None,
                 "version_reason": None}
            )  # fmt: skip
        phq9(pid, course_id, 22, 0)
        phq9(pid, course_id, 6, 13)
        riser = n % 2 == 0
        phq9(pid, course_id, 10 if riser else 6, 34)
        if riser:
            risen.append(pid)
    for model, batch in rows.items():
        table = model.__table__  # type: ignore[attr-defined]
        for start in range(0, len(batch), 5000):
            conn.execute(insert(table), batch[start : start + 5000])
    return risen
