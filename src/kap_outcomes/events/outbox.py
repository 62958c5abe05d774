"""Recording events: the one hook every write-side use case calls.

``emit`` adds the event to the log in the caller's transaction and runs the in-process
subscribers in that same transaction (the caseload marks its summary stale, for instance),
so a write never calls another domain's repository and adding a consumer never means
editing every service. After the transaction commits, the bell rings: long-polls, live
streams and the embedded delivery worker wake up at once instead of at their next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from kap_outcomes.db import after_commit, new_id, utcnow
from kap_outcomes.events import repository
from kap_outcomes.events.models import EventType


@dataclass(frozen=True, slots=True)
class Recorded:
    """An event as a subscriber receives it (the row just written)."""

    id: str
    type: EventType
    organisation_id: str
    patient_id: str | None
    resource_type: str
    resource_id: str
    occurred_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)


Subscriber = Callable[[Connection, Recorded], None]
_subscribers: list[Subscriber] = []
_loaded = False

CONSUMERS = ("kap_outcomes.caseload.listener", "kap_outcomes.metrics.listener")
"""Modules that subscribe at import; loaded on the first event, whoever emits it (the app,
the command line, a test calling a service directly)."""


def subscribe(subscriber: Subscriber) -> Subscriber:
    """Run ``subscriber`` in the transaction of every event from now on (a decorator)."""
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)
    return subscriber


def _load_consumers() -> None:
    global _loaded
    if not _loaded:
        for name in CONSUMERS:
            importlib.import_module(name)
        _loaded = True


def emit(
    conn: Connection,
    *,
    type: EventType,
    organisation_id: str,
    patient_id: str | None,
    resource_id: str,
    resource_type: str | None = None,
    data: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> Recorded:
    """Append one event to the log, in the caller's transaction, and tell the subscribers.

    ``resource_type`` is the noun of the type (``session`` for ``session.recorded``) unless
    given."""
    _load_consumers()
    resource_type = resource_type or type.value.partition(".")[0]
    event = Recorded(
        id=new_id(),
        type=type,
        organisation_id=organisation_id,
        patient_id=patient_id,
        resource_type=resource_type,
        resource_id=resource_id,
        occurred_at=at or utcnow(),
        data=dict(data or {}),
    )
    repository.append(
        conn,
        {
            "id": event.id,
            "organisation_id": organisation_id,
            "type": type.value,
            "occurred_at": event.occurred_at,
            "patient_id": patient_id,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "data": event.data,
        },
    )
    for subscriber in _subscribers:
        subscriber(conn, event)
    after_commit(conn, BELL.ring)
    return event


def emit_about(
    conn: Connection,
    row: Mapping[str, Any],
    *,
    type: EventType,
    data: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> Recorded:
    """``emit`` an event about one stored row of a patient's (a course, a session, an
    assessment, an alert): the event names the row's organisation, patient and id."""
    return emit(
        conn,
        type=type,
        organisation_id=row["organisation_id"],
        patient_id=row["patient_id"],
        resource_id=str(row["id"]),
        data=data,
        at=at,
    )


class Bell:
    """Wakes whoever waits for new events in this process (thread-safe to ring).

    Rung after a commit that wrote events, from the event loop (SQLite's group commit) or a
    worker thread (PostgreSQL). Waiters also poll, so events written by another process are
    seen within their poll interval.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.rings = 0
        """How often it has rung: read it before looking for events, pass it to ``wait``,
        and a ring in between is not missed."""

    def ring(self) -> None:
        with self._lock:
            self.rings += 1
            waiters = list(self._waiters)
        for loop, woken in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed; its waiter is gone
                loop.call_soon_threadsafe(woken.set)

    async def wait(self, seen: int, seconds: float) -> bool:
        """Until a ring after the ``seen``-th, or ``seconds``; True when rung."""
        woken = asyncio.Event()
        key = (asyncio.get_running_loop(), woken)
        with self._lock:
            if self.rings != seen:
                return True
            self._waiters.add(key)
        try:
            async with asyncio.timeout(max(seconds, 0)):
                await woken.wait()
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters.discard(key)


BELL = Bell()
