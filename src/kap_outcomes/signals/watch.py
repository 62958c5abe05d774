"""The signal watch: turns changes of booster status or trend label into ``signal.changed``.

Booster status and trends are computed from all of a patient's data, too much for every
write to recompute. So a background consumer of the event log does it: for each batch of
events that can move a signal (assessments, sessions, courses) it recomputes the patients
concerned, compares with the state it saw last (``signal_states``), and emits one
``signal.changed`` per patient whose status or label moved, ``{"from", "to"}`` for each,
in the transaction that stores the new state and moves its checkpoint. A patient first
seen starts from ``not_applicable`` and ``insufficient_data``. Changes that come from the
clock alone (no new data) are reported with the patient's next event.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from kap_outcomes.clinical.policy import Policy
from kap_outcomes.db import utcnow
from kap_outcomes.events import repository as events_repository
from kap_outcomes.events.models import EventType
from kap_outcomes.events.outbox import emit
from kap_outcomes.events.repository import Position
from kap_outcomes.policy import service as policy_service
from kap_outcomes.signals import repository
from kap_outcomes.signals import service as signals_service
from kap_outcomes.signals.service import PatientData

CONSUMER = "signals"
BATCH = 2000
MOVES_SIGNALS = frozenset(
    {
        EventType.assessment_submitted,
        EventType.assessment_amended,
        EventType.assessment_retracted,
        EventType.session_recorded,
        EventType.course_opened,
    }
)
INITIAL = {
    "booster_status": "not_applicable",
    "phq9_trend": "insufficient_data",
    "gad7_trend": "insufficient_data",
}


@dataclass(frozen=True, slots=True)
class Change:
    patient_id: str
    organisation_id: str
    state: dict[str, str]
    changed: dict[str, dict[str, str]]
    known: bool


@dataclass(frozen=True, slots=True)
class Plan:
    """What one batch of the log changes, computed in a read (no lock held meanwhile)."""

    start: Position
    end: Position
    changes: list[Change]


def plan(conn: Connection) -> Plan | None:
    """Recompute the patients that the next batch of events concerns (a read transaction:
    the heavy part never holds the write lock nor, on SQLite, the writers' event loop)."""
    start = events_repository.checkpoint(conn, name=CONSUMER)
    if start is None:
        return None
    rows = events_repository.following(conn, after=start, limit=BATCH)
    if not rows:
        return None
    patients: dict[str, str] = {}
    for row in rows:
        if row.type in MOVES_SIGNALS and row.patient_id is not None:
            patients[row.patient_id] = row.organisation_id
    last = rows[-1]
    end = Position(int(last.tx), int(last.seq))
    return Plan(start, end, _changes(conn, patients) if patients else [])


def apply(conn: Connection, *, plan: Plan) -> bool:
    """Store the plan's states and emit its events, if nobody moved the checkpoint since."""
    if events_repository.claim_consumer(conn, name=CONSUMER) != plan.start:
        return False  # another worker holds it, or took this batch already
    now = utcnow()
    for change in plan.changes:
        repository.save_signal_state(
            conn,
            values={
                "patient_id": change.patient_id,
                "organisation_id": change.organisation_id,
                **change.state,
                "updated_at": now,
            },
            exists=change.known,
        )
        emit(
            conn,
            type=EventType.signal_changed,
            organisation_id=change.organisation_id,
            patient_id=change.patient_id,
            resource_type="signals",
            resource_id=change.patient_id,
            data=change.changed,
            at=now,
        )
    events_repository.advance_consumer(conn, name=CONSUMER, to=plan.end)
    return True


def _changes(conn: Connection, patients: dict[str, str]) -> list[Change]:
    ids = sorted(patients)
    loaded = signals_service.load_many(conn, patient_ids=ids)
    states = repository.signal_states(conn, patient_ids=ids)
    policies: dict[str, Policy] = {}
    now = utcnow()
    out = []
    for patient_id in ids:
        organisation_id = patients[patient_id]
        if organisation_id not in policies:
            policies[organisation_id] = policy_service.current_policy(
                conn, organisation_id=organisation_id
            )[1]
        policy = policies[organisation_id]
        data = loaded.get(patient_id) or PatientData()
        seen = states.get(patient_id)
        before: dict[str, str] = (
            {k: getattr(seen, k) for k in INITIAL} if seen is not None else dict(INITIAL)
        )
        after = {
            "booster_status": str(signals_service.booster(data, "phq9", now, policy).status),
            "phq9_trend": signals_service.trend_label(data, "phq9", policy),
            "gad7_trend": signals_service.trend_label(data, "gad7", policy),
        }
        changed = {k: {"from": before[k], "to": after[k]} for k in INITIAL if before[k] != after[k]}
        if changed:
            out.append(Change(patient_id, organisation_id, after, changed, seen is not None))
    return out
