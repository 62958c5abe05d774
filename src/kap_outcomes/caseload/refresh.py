"""The caseload's background refresh: recompute stale summaries outside any request.

The worker calls :meth:`Refresh.step` on each of its rounds. A step looks (at most every
``IDLE_INTERVAL_S`` while there is nothing to do) for organisations with more stale summaries
than a caseload read recomputes itself (``service.INLINE_RECOMPUTE``; the few rows a stream
of writes leaves stale wait for the next read, so nobody recomputes what nobody reads) and
recomputes one batch of each (``service.BATCH`` rows: a read of four queries, then one short
write), so a policy change on 50,000 patients is a hundred small units of work, not one
request-sized one, and other organisations are not kept waiting behind it.

One refresh at a time per organisation: on PostgreSQL a batch runs only while its worker
holds the organisation's advisory lock (``pg_try_advisory_lock`` on a connection of its own,
not waited for), so any number of workers and app instances never recompute the same
organisation together; a worker that dies releases the lock with its connection. SQLite
serves from one process, whose one worker refreshes one organisation at a time.
"""

from __future__ import annotations

import logging
import time
from functools import partial

import anyio.to_thread
from sqlalchemy import Connection

from kap_outcomes.caseload import repository, service
from kap_outcomes.db import Database

log = logging.getLogger("kap_outcomes.caseload")

IDLE_INTERVAL_S = 1.0
"""How often an idle worker looks for stale summaries (one query on a partial index)."""
ORGANISATIONS_PER_STEP = 20


async def refresh_organisation(
    db: Database, organisation_id: str, *, batch: int = service.BATCH
) -> int | None:
    """Recompute one batch of the organisation's stale summaries under its lease.

    The number of summaries recomputed, or None when another refresh holds the lease.
    """
    lease = await anyio.to_thread.run_sync(partial(_take_lease, db, organisation_id))
    if lease is None:
        return None
    try:
        rows = await db.read(
            partial(service.recompute_stale, organisation_id=organisation_id, limit=batch)
        )
        if rows:
            await db.write(partial(repository.store_summaries, rows=rows))
        return len(rows)
    finally:
        await anyio.to_thread.run_sync(partial(_end_lease, lease, organisation_id))


def _take_lease(db: Database, organisation_id: str) -> Connection | None:
    conn = db.connect(write=False)
    try:
        if not db.sqlite:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        if repository.try_lease(conn, organisation_id=organisation_id):
            return conn
    except BaseException:
        conn.close()
        raise
    conn.close()
    return None


def _end_lease(conn: Connection, organisation_id: str) -> None:
    try:
        repository.end_lease(conn, organisation_id=organisation_id)
    finally:
        conn.close()  # on PostgreSQL the lock goes with the session even if the unlock failed


class Refresh:
    """The worker's part: which organisations to refresh, how often to look."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._looked_at = 0.0
        self._behind = False

    async def step(self) -> bool:
        """One batch for each organisation with stale summaries; True when it recomputed
        something (the worker's next round then comes at once)."""
        if not self._behind and time.monotonic() - self._looked_at < IDLE_INTERVAL_S:
            return False
        self._looked_at = time.monotonic()
        organisations = await self.db.read(
            partial(
                repository.organisations_with_stale,
                more_than=service.INLINE_RECOMPUTE,
                limit=ORGANISATIONS_PER_STEP,
            )
        )
        done = 0
        for organisation_id in organisations:
            done += await refresh_organisation(self.db, organisation_id) or 0
        self._behind = done > 0
        return self._behind
