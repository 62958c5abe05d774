"""The signal watch: turns changes of booster status or trend label into ``signal.changed``.

Booster status and trends are computed from all of a patient's data, too much for every
write to recompute. So a background consumer of the event log does it: for each batch of
events that can move a signal (assessments, sessions, courses) it recomputes the patients
concerned, compares with the state it saw last (``signal_states``), and emits one
``signal.changed`` per patient whose status or label moved, ``{"from", "to"}`` for each,
in the transaction that stores the new state and moves its checkpoint. A patient first
seen starts from ``not_applicable`` and ``insufficient_data``. Changes that come from the
clock alone (no new data) are reported with the patient's next event.

What it reads of a patient is bounded by the active course and the trend window, not by the
patient's whole history (``load_recent``): the same rules (clinical/) on fewer rows, with the
same outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

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
from kap_outcomes.signals.repository import ValidScore
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


def load_recent(
    conn: Connection, *, patient_ids: Sequence[str], policies: Mapping[str, Policy]
) -> dict[str, PatientData]:
    """What the watch's three values need of each patient (``policies``: each patient's
    policy), a suffix of the patient's valid scores in time order rather than all of them:

    - a trend label (clinical-rules.md section 4) looks at the last ``trend_window_scores``
      scores of its instrument, those within ``trend_window_days`` of the latest; any suffix
      holding at least the last ``trend_window_scores`` gives the same window;
    - the booster status (section 5) needs no score before a course has a dose; with doses,
      the scores from ``baseline_lookback_days`` before the course's first dose on (the
      baseline, the scores since induction and those since the latest dose all lie there).

    So each patient costs two short index reads backwards (the last scores of each
    instrument), one range read of the current course's scores when it has doses, and its
    share of the course and dose reads: in proportion to the trend window and the course,
    whatever the length of the history. The rules themselves stay in clinical/ and run on
    these rows as they would on all of them (tests/events/test_signal_watch.py compares).
    """
    out = {patient_id: PatientData() for patient_id in patient_ids}
    for course in repository.active_courses(conn, patients=patient_ids):
        data = out[course.patient_id]
        if data.course is None:  # latest started first
            data.course = course
    for dose in repository.dose_times(conn, patients=patient_ids):
        data = out[dose.patient_id]
        if data.course is not None and data.course.id == dose.course_id:
            data.doses.append(dose.occurred_at)
    for patient_id, data in out.items():
        policy = policies[patient_id]
        rows: dict[str, ValidScore] = {}
        for instrument in data.scores:
            for row in repository.latest_valid_scores(
                conn,
                patient_id=patient_id,
                instrument=instrument,
                limit=policy.trend_window_scores,
            ):
                rows[row.id] = row
        if data.doses:
            since = min(data.doses) - timedelta(days=policy.baseline_lookback_days)
            for row in repository.valid_scores_since(conn, patient_id=patient_id, since=since):
                rows[row.id] = row
        for row in sorted(rows.values(), key=lambda r: (r.administered_at, r.id)):
            data.scores[row.instrument].append(row)
    return out


def _changes(conn: Connection, patients: dict[str, str]) -> list[Change]:
    ids = sorted(patients)
    by_organisation: dict[str, Policy] = {}
    for organisation_id in sorted(set(patients.values())):
        by_organisation[organisation_id] = policy_service.current_policy(
            conn, organisation_id=organisation_id
        )[1]
    policy_of = {patient_id: by_organisation[patients[patient_id]] for patient_id in ids}
    loaded = load_recent(conn, patient_ids=ids, policies=policy_of)
    states = repository.signal_states(conn, patient_ids=ids)
    now = utcnow()
    out = []
    for patient_id in ids:
        organisation_id = patients[patient_id]
        policy = policy_of[patient_id]
        data = loaded[patient_id]
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
