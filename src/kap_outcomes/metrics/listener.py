"""Counts assessments and opened alerts from the event log, once their transaction commits
(a rolled-back write counts nothing)."""

from __future__ import annotations

from functools import partial

from sqlalchemy import Connection

from kap_outcomes.db import after_commit
from kap_outcomes.events.models import EventType
from kap_outcomes.events.outbox import Recorded, subscribe
from kap_outcomes.metrics import ALERTS_OPENED, ASSESSMENTS


@subscribe
def on_event(conn: Connection, event: Recorded) -> None:
    if event.type is EventType.assessment_submitted:
        counter = ASSESSMENTS.labels(str(event.data["instrument"]))
    elif event.type is EventType.alert_opened:
        counter = ALERTS_OPENED.labels(str(event.data["level"]))
    else:
        return
    # a partial per event: after_commit runs each distinct callback once, and a batch of
    # several assessments must count each
    after_commit(conn, partial(counter.inc, 1))
