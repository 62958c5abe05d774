"""The caseload after a policy change on 5,000 patients: the read answers from what is stored
and says how much is stale; the worker recomputes in the background, one refresh at a time
per organisation. (How fast the read answers is measured in bench/caseload.py, not here.)"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from functools import partial

import pytest
from sqlalchemy import text

from kap_outcomes.auth.models import Role
from kap_outcomes.caseload import refresh
from kap_outcomes.caseload.refresh import Refresh, refresh_organisation
from kap_outcomes.db import Database, make_engine
from kap_outcomes.worker import Worker
from tests.caseload_seed import seed

from .course import Clinic

PATIENTS = 5000


def _caseload(tenant, **params) -> dict:
    resp = tenant.get("/v1/caseload", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _refresh_all(db: Database) -> int:
    """The worker's refresh, step after step, until it has nothing left to do."""

    async def run() -> int:
        job, steps = Refresh(db), 0
        while await job.step():
            steps += 1
        return steps

    return asyncio.run(run())


def _stale_in(org_id: str, conn) -> int:
    return int(
        conn.execute(
            text("SELECT count(*) FROM patient_summaries WHERE organisation_id = :o AND stale"),
            {"o": org_id},
        ).scalar_one()
    )


def _stale(db: Database, org_id: str) -> int:
    return db.run_read(partial(_stale_in, org_id))


def _everyone(tenant) -> list[dict]:
    rows, cursor = [], None
    while True:
        page = _caseload(tenant, limit=500, **({"cursor": cursor} if cursor else {}))
        rows += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


def test_a_policy_change_on_5000_patients_is_recomputed_in_the_background(tenant, db):
    risers = set(db.run_write(partial(seed, organisation_id=tenant.org_id, patients=PATIENTS)))
    # Bulk-loaded: every summary stale. A read recomputes none of them (far more than a few).
    first = _caseload(tenant)
    assert first["stale_count"] == PATIENTS
    assert _refresh_all(db) >= PATIENTS // refresh.service.BATCH
    fresh = _caseload(tenant)
    assert fresh["stale_count"] == 0
    assert {r["booster_status"] for r in _everyone(tenant)} == {"stable"}

    before_change = datetime.now(UTC)
    headers = tenant.headers(Role.admin) | {"If-Match": '"default"'}
    body = {"phq9": {"rise_from_nadir": 4}}
    assert tenant.client.put("/v1/policy", json=body, headers=headers).status_code == 200

    # The next read answers from the stored rows and says they are all behind.
    stale = _caseload(tenant, limit=50)
    assert stale["stale_count"] == PATIENTS
    assert datetime.fromisoformat(stale["as_of"]) <= before_change
    assert [r["booster_status"] for r in stale["data"]] == ["stable"] * 50
    assert {r["policy_version"] for r in stale["data"]} == {"default"}

    _refresh_all(db)
    after = _caseload(tenant, limit=50)
    assert after["stale_count"] == 0
    assert datetime.fromisoformat(after["as_of"]) >= before_change
    rows = _everyone(tenant)
    ids = [r["patient_id"] for r in rows]
    # watch (rank 4) before stable (rank 5), each band by patient id
    assert ids == sorted(risers) + sorted(set(ids) - risers)
    assert {r["booster_status"] for r in rows[: len(risers)]} == {"watch"}
    assert {r["booster_status"] for r in rows[len(risers) :]} == {"stable"}
    assert {r["policy_version"] for r in rows} == {"v1"}


def test_a_few_stale_rows_are_recomputed_by_the_read_itself(tenant):
    """The patients just written to show on the next read, and the answer says so."""
    clinic = Clinic(tenant)
    clinic.phq9(0, 22)
    page = _caseload(tenant)
    assert page["stale_count"] == 0 and page["data"][0]["phq9"]["total"] == 22
    assert datetime.fromisoformat(page["as_of"]) <= datetime.now(UTC)


def test_the_embedded_worker_refreshes_the_caseload(tenant, db, settings):
    """The real worker loop, not the refresh alone: stale rows become fresh without a read."""
    db.run_write(partial(seed, organisation_id=tenant.org_id, patients=300))
    assert _caseload(tenant)["stale_count"] == 300

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(Worker(db, settings).run(stop))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not await db.read(partial(_stale_in, tenant.org_id)):
                break
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(task, 15)

    asyncio.run(run())
    page = _caseload(tenant)
    assert page["stale_count"] == 0
    assert {r["booster_status"] for r in page["data"]} == {"stable"}


def test_two_refreshes_of_one_organisation_never_run_together(tenant, database_url):
    """Two workers (each its own engine, as two processes would have) start the refresh of
    the same organisation at the same moment: between them every stale row is recomputed
    exactly once. Without the lease both would recompute all of them."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the advisory lock is PostgreSQL's (SQLite serves from one process)")
    workers = [Database(make_engine(database_url)) for _ in range(2)]
    try:
        workers[0].run_write(partial(seed, organisation_id=tenant.org_id, patients=2000))
        barrier = threading.Barrier(2)
        done: list[int | None] = [None, None]

        def work(i: int) -> None:
            barrier.wait()
            done[i] = asyncio.run(refresh_organisation(workers[i], tenant.org_id, batch=2000))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert sum(n or 0 for n in done) == 2000, done
        assert _stale(workers[0], tenant.org_id) == 0

        # And while another session holds the organisation's lease, a refresh does nothing.
        workers[0].run_write(
            lambda conn: conn.execute(
                text("UPDATE patient_summaries SET stale = true WHERE organisation_id = :o"),
                {"o": tenant.org_id},
            )
        )
        with workers[1].engine.connect() as other:
            other.execute(
                text("SELECT pg_advisory_lock(:k)"),
                {"k": refresh.repository.lease_key(tenant.org_id)},
            )
            assert asyncio.run(refresh_organisation(workers[0], tenant.org_id)) is None
            assert _stale(workers[0], tenant.org_id) == 2000
            other.rollback()
            other.execute(
                text("SELECT pg_advisory_unlock(:k)"),
                {"k": refresh.repository.lease_key(tenant.org_id)},
            )
        assert asyncio.run(refresh_organisation(workers[0], tenant.org_id, batch=2000)) == 2000
    finally:
        for w in workers:
            w.dispose()
