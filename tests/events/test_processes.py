"""Delivery across real processes (issue #11, 4): a server SIGKILLed right after a burst of
201s loses no event; two ``kap-outcomes worker`` processes on one PostgreSQL database bring
each of 1,000 events exactly once. Each runs once (in the SQLite run), on a database of its
own: SQLite for the embedded worker of ``serve``, a throwaway PostgreSQL cluster for the
workers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import Principal, ensure_organisation, issue_token
from kap_outcomes.db import Database, make_engine
from kap_outcomes.migrate import upgrade
from kap_outcomes.patients import service as patients_service
from kap_outcomes.patients.models import PatientCreate
from kap_outcomes.webhooks import service as webhooks_service
from kap_outcomes.webhooks.egress import EgressPolicy
from kap_outcomes.webhooks.models import WebhookCreate

from ..conftest import PG_URL
from ..migrated import migrated_sqlite
from ..processes import ServiceProcess, ThrowawayPostgres, http_client, service_env, wait_for
from .receiver import Receiver

pytestmark = pytest.mark.skipif(
    bool(PG_URL), reason="brings its own databases: runs once, in the SQLite run"
)

FAST = {
    "KAP_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
    "KAP_WEBHOOK_LEASE_S": "3",
    "KAP_WEBHOOK_TIMEOUT_S": "1",
    "KAP_WORKER_POLL_INTERVAL_S": "0.1",
    "KAP_WEBHOOK_RETRY_SCHEDULE_S": "[0.2, 0.5, 1, 2]",
}


def _org(url: str, receiver_url: str) -> tuple[str, str]:
    """An organisation with a clinician token and a webhook on patient.created."""
    db = Database(make_engine(url))

    def create(conn: Any) -> tuple[str, str]:
        org = ensure_organisation(conn, "processes")
        token_id, token = issue_token(conn, organisation_id=org, role=Role.clinician)
        admin = Principal(token_id=token_id, organisation_id=org, role=Role.admin, patient_id=None)
        hook = webhooks_service.create_endpoint(
            conn,
            principal=admin,
            data=WebhookCreate(url=receiver_url, event_types=["patient.created"]),
            policy=EgressPolicy(),
        )
        return token, hook.secret

    try:
        return db.run_write(create)
    finally:
        db.dispose()


def test_no_event_committed_before_a_sigkill_is_lost(tmp_path: Path) -> None:
    receiver = Receiver(lambda n: (0.2, 200))  # slow enough that a backlog builds
    url = migrated_sqlite(tmp_path / "kap.db")
    # a name, not 127.0.0.1: registered without the loopback allowance of this process
    token, secret = _org(url, f"http://localhost:{receiver.port}/hook")
    env = service_env(url) | FAST
    headers = {"Authorization": f"Bearer {token}"}
    acked: list[str] = []
    lock = threading.Lock()

    def burst(worker: int, server: ServiceProcess) -> None:
        with http_client(base_url=server.base, headers=headers, timeout=20) as http:
            for n in range(60):
                resp = http.post("/v1/patients", json={"external_id": f"kill-{worker}-{n}"})
                assert resp.status_code == 201, resp.text
                with lock:
                    acked.append(resp.json()["id"])

    server = ServiceProcess(env, tmp_path)
    try:
        threads = [threading.Thread(target=burst, args=(w, server)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        server.stop(signal.SIGKILL)  # right after the last 201
    finally:
        server.stop(signal.SIGKILL)
    assert server.proc.returncode == -signal.SIGKILL
    assert len(acked) == 240
    delivered_before = {p["patient_id"] for p in receiver.verified(secret)}
    assert len(delivered_before) < len(acked), "the kill came after every delivery"

    server = ServiceProcess(env, tmp_path)
    try:
        wait_for(
            lambda: {p["patient_id"] for p in receiver.verified(secret)} >= set(acked),
            timeout=60,
            what="every acknowledged patient.created to be delivered after the restart",
            step=0.2,
        )
    finally:
        server.stop()
        receiver.close()
    ids = Counter(r.headers["webhook-id"] for r in receiver.received)
    assert len(ids) == len(acked)  # one event per patient, none invented


@pytest.fixture
def postgres() -> Iterator[ThrowawayPostgres]:
    pg = ThrowawayPostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.destroy()


def test_two_workers_on_postgresql_deliver_each_of_1000_events_once(
    postgres: ThrowawayPostgres, tmp_path: Path
) -> None:
    receiver = Receiver()
    upgrade(postgres.url)
    _, secret = _org(postgres.url, f"http://localhost:{receiver.port}/hook")
    # leases long enough for a loaded machine: nobody dies here, so none may run out
    env = (
        service_env(postgres.url)
        | FAST
        | {"KAP_WEBHOOK_LEASE_S": "30", "KAP_WEBHOOK_TIMEOUT_S": "5"}
    )
    logs = [(tmp_path / f"worker-{n}.log").open("wb") for n in range(2)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "kap_outcomes.cli", "worker"],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for log in logs
    ]
    db = Database(make_engine(postgres.url))
    try:
        org_id = db.run_read(
            lambda c: c.execute(
                text("SELECT id FROM organisations WHERE slug = 'processes'")
            ).scalar_one()
        )
        clinician = Principal(
            token_id="t", organisation_id=org_id, role=Role.clinician, patient_id=None
        )

        def create(conn: Any, batch: int) -> None:
            for n in range(50):
                patients_service.create_patient(
                    conn, principal=clinician, data=PatientCreate(external_id=f"w-{batch}-{n}")
                )

        for batch in range(20):  # 1,000 events, written while both workers run
            db.run_write(lambda conn, b=batch: create(conn, b))
        wait_for(
            lambda: len({r.headers["webhook-id"] for r in receiver.received}) >= 1000,
            timeout=90,
            what="1,000 distinct deliveries",
            step=0.2,
        )

        def settled(conn: Any) -> list[Any]:
            return list(
                conn.execute(
                    text("SELECT status, count(*) FROM webhook_deliveries GROUP BY status")
                ).all()
            )

        # one delivery per event; a retry (after a connection the receiver dropped) carries
        # the same webhook-id, so the receiver still counts it once. A worker records the
        # success after the receiver has answered: wait for the last few to be written down.
        wait_for(
            lambda: [tuple(r) for r in db.run_read(settled)] == [("succeeded", 1000)],
            timeout=30,
            what="every delivery recorded as succeeded",
            step=0.2,
        )
        retried = set(
            db.run_read(
                lambda c: (
                    c.execute(text("SELECT event_id FROM webhook_deliveries WHERE attempts > 1"))
                    .scalars()
                    .all()
                )
            )
        )
        for w in workers:
            assert w.poll() is None, "a worker died"
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(20)
            except subprocess.TimeoutExpired:
                w.kill()
        for log in logs:
            log.close()
        db.dispose()
        receiver.close()
    counts = Counter(r.headers["webhook-id"] for r in receiver.received)
    assert len(counts) == 1000
    twice = {event_id for event_id, n in counts.items() if n > 1}
    # the two workers never sent one delivery both: only a failed attempt is ever repeated
    assert twice <= retried, "an event was delivered twice without a failed attempt"
    assert len(retried) <= 10, "many attempts failed: the receiver was overwhelmed"
    assert len(receiver.verified(secret)) == 1000
    assert json.loads(receiver.received[0].body)["type"] == "patient.created"
