"""Waiting until the event feed serves what a test wrote."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from kap_outcomes.events import repository

from ..processes import wait_for


def settled(tenant: Any) -> None:
    """Until the feed serves every event the test has written so far. On PostgreSQL the feed
    serves an event once no transaction older than its own is still writing, in any database
    of the server: another xdist worker's write can hold one back for a moment (on SQLite the
    feed serves it at once). A test that reads right after writing waits for that, as a
    client's long-poll would."""

    def newest_is_served(conn: Any) -> bool:
        newest = conn.execute(
            select(repository.events.c.tx, repository.events.c.seq)
            .where(repository.events.c.organisation_id == tenant.org_id)
            .order_by(repository.events.c.tx.desc(), repository.events.c.seq.desc())
            .limit(1)
        ).first()
        served = repository.head(conn, organisation_id=tenant.org_id)
        return newest is None or served == repository.Position(int(newest.tx), int(newest.seq))

    wait_for(lambda: tenant.db.run_read(newest_is_served), timeout=15, what="the feed to serve")
