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

from typing import Any

from sqlalchemy import Connection

from kap_outcomes.clinical.policy import Policy
from kap_outcomes.db import utcnow
from kap_outcomes.events import repository as events_repository
from kap_outcomes.events.models import EventType
from kap_outcomes.events.outbox import emit
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


def watch(conn: Connection) -> bool:
    """One batch of the log; True when the checkpoint moved (there may be more)."""
    position = events_repository.claim_consumer(conn, name=CONSUMER)
    if position is None:
        return False
    rows = events_repository.following(conn, after=position, limit=BATCH)
    if not rows:
        return False
    patients: dict[str, str] = {}
    for row in rows:
        if row.type in MOVES_SIGNALS and row.patient_id is not None:
            patients[row.patient_id] = row.organisation_id
    if patients:
        _recompute(conn, patients)
    last = rows[-1]
    events_repository.advance_consumer(
        conn, name=CONSUMER, to=events_repository.Position(int(last.tx), int(last.seq))
    )
    return True


def _recompute(conn: Connection, patients: dict[str, str]) -> None:
    ids = sorted(patients)
    loaded = signals_service.load_many(conn, patient_ids=ids)
    states = repository.signal_states(conn, patient_ids=ids)
    policies: dict[str, Policy] = {}
    now = utcnow()
    for patient_id in ids:
        organisation_id = patients[patient_id]
        if organisation_id not in policies:
            policies[organisation_id] = policy_service.current_policy(
                conn, organisation_id=organisation_id
            )[1]
        policy = policies[organisation_id]
        data = loaded.get(patient_id) or PatientData()
        seen = states.get(patient_id)
        before: dict[str, Any] = (
            {k: getattr(seen, k) for k in INITIAL} if seen is not None else dict(INITIAL)
        )
        after = {
            "booster_status": signals_service.booster(data, "phq9", now, policy).status,
            "phq9_trend": signals_service.trend_label(data, "phq9", policy),
            "gad7_trend": signals_service.trend_label(data, "gad7", policy),
        }
        changed = {k: {"from": before[k], "to": after[k]} for k in INITIAL if before[k] != after[k]}
        if not changed:
            continue
        repository.save_signal_state(
            conn,
            values={
                "patient_id": patient_id,
                "organisation_id": organisation_id,
                **after,
                "updated_at": now,
            },
            exists=seen is not None,
        )
        emit(
            conn,
            type=EventType.signal_changed,
            organisation_id=organisation_id,
            patient_id=patient_id,
            resource_type="signals",
            resource_id=patient_id,
            data=changed,
            at=now,
        )
