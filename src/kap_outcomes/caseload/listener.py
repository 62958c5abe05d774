"""The caseload listens to the event log: every event about a patient marks that patient's
summary stale (recomputed by the next caseload read when only a few are stale, else by the
worker's refresh), a new patient gets its summary row, and a policy change marks the whole
organisation stale. Runs in the writer's transaction."""

from __future__ import annotations

from sqlalchemy import Connection

from kap_outcomes.caseload import repository
from kap_outcomes.events.models import EventType
from kap_outcomes.events.outbox import Recorded, subscribe

_NOT_CLINICAL = frozenset({EventType.signal_changed})
"""Derived from the data the summary is computed from; nothing new to recompute."""


@subscribe
def on_event(conn: Connection, event: Recorded) -> None:
    if event.type is EventType.patient_created and event.patient_id is not None:
        repository.insert_summary(
            conn,
            organisation_id=event.organisation_id,
            patient_id=event.patient_id,
            at=event.occurred_at,
        )
    elif event.type is EventType.policy_changed:
        repository.mark_organisation_stale(conn, organisation_id=event.organisation_id)
    elif event.patient_id is not None and event.type not in _NOT_CLINICAL:
        repository.mark_stale(conn, patient_id=event.patient_id)
