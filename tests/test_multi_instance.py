"""Scale-out (issue #14, 5): two ``serve`` processes and one ``kap-outcomes worker`` on one
PostgreSQL database, limits shared through Redis, requests alternating between the two.

What must hold whichever instance answers: the rate limit and the failed-authentication
throttle are one budget; an ``Idempotency-Key`` replays across instances and, sent to both at
once, stores one record; every acknowledged write is stored exactly once; both instances
show the same caseload; the worker brings each event to a real receiver once; and each
instance's /metrics counts the requests it answered.

Runs once, in the SQLite run, on a throwaway PostgreSQL cluster of its own (as the two-worker
test of tests/events does) and the machine's Redis under a key prefix of its own.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import Principal, ensure_organisation, issue_token
from kap_outcomes.db import Database, make_engine
from kap_outcomes.migrate import upgrade
from kap_outcomes.webhooks import service as webhooks_service
from kap_outcomes.webhooks.egress import EgressPolicy
from kap_outcomes.webhooks.models import WebhookCreate

from .conftest import PG_URL
from .events.receiver import Receiver
from .processes import (
    ServiceProcess,
    ThrowawayPostgres,
    http_client,
    http_get,
    service_env,
    wait_for,
)

pytestmark = pytest.mark.skipif(
    bool(PG_URL), reason="brings its own PostgreSQL cluster: runs once, in the SQLite run"
)

RATE = 30  # requests per token per minute, for all instances together
FAILURES = 5  # failed authentications per address per minute
WRITERS = 6  # threads, each with a token of its own (so each stays within RATE)
PATIENTS_EACH = 2
PHQ9_REVIEW = [1, 2, 1, 0, 1, 2, 1, 0, 1]  # item 9 = 1: a review alert
PHQ9_CALM = [0, 1, 0, 0, 1, 0, 0, 0, 0]
GAD7 = [1, 1, 1, 1, 1, 1, 1]


class Org:
    def __init__(self, url: str, receiver_url: str) -> None:
        db = Database(make_engine(url))

        def create(conn: Any) -> None:
            self.org_id = ensure_organisation(conn, "scale-out")
            self.tokens = [
                issue_token(conn, organisation_id=self.org_id, role=Role.clinician)[1]
                for _ in range(WRITERS + 4)
            ]
            admin = Principal(
                token_id="t", organisation_id=self.org_id, role=Role.admin, patient_id=None
            )
            hook = webhooks_service.create_endpoint(
                conn,
                principal=admin,
                data=WebhookCreate(
                    url=receiver_url,
                    event_types=["patient.created", "assessment.submitted", "alert.opened"],
                ),
                policy=EgressPolicy(),
            )
            self.secret = hook.secret

        try:
            db.run_write(create)
        finally:
            db.dispose()


class Instances:
    """Two servers; ``http(n)`` alternates between them and remembers who answered what."""

    def __init__(self, a: ServiceProcess, b: ServiceProcess) -> None:
        self.servers = (a, b)
        self.clients = [http_client(base_url=s.base, timeout=30) for s in self.servers]
        self.answered: list[Counter[tuple[str, str, int]]] = [Counter(), Counter()]
        self._lock = threading.Lock()

    def call(
        self, n: int, method: str, path: str, route: str, token: str, **kw: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        resp = self.clients[n % 2].request(method, path, headers=headers, **kw)
        with self._lock:
            self.answered[n % 2][(method, route, resp.status_code)] += 1
        return resp

    def close(self) -> None:
        for c in self.clients:
            c.close()


@pytest.fixture
def postgres() -> Iterator[ThrowawayPostgres]:
    pg = ThrowawayPostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.destroy()


def _scrape(server: ServiceProcess) -> dict[tuple[str, str, str], float]:
    text_ = http_get(f"{server.base}/metrics", timeout=10).text
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text_)
        for s in family.samples
        if s.name == "kap_http_request_duration_seconds_count"
    }


def test_two_instances_and_a_worker_behave_as_one(
    postgres: ThrowawayPostgres, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    receiver = Receiver()
    upgrade(postgres.url)
    # a name, not 127.0.0.1: registered without the loopback allowance the processes have
    org = Org(postgres.url, f"http://localhost:{receiver.port}/hook")
    env = service_env(postgres.url) | {
        "KAP_REDIS_URL": redis_url,
        "KAP_REDIS_KEY_PREFIX": redis_prefix,
        "KAP_RATE_LIMIT_PER_MINUTE": str(RATE),
        "KAP_FAILED_AUTH_PER_MINUTE": str(FAILURES),
        "KAP_WORKER_EMBEDDED": "false",  # the worker process delivers
        "KAP_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        "KAP_WORKER_POLL_INTERVAL_S": "0.1",
        "KAP_WEBHOOK_LEASE_S": "30",
        "KAP_WEBHOOK_TIMEOUT_S": "5",
        "KAP_WEBHOOK_RETRY_SCHEDULE_S": "[0.2, 0.5, 1, 2]",
    }
    worker_log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "kap_outcomes.cli", "worker"],
        env=env,
        cwd=tmp_path,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
    )
    servers: list[ServiceProcess] = []
    db = Database(make_engine(postgres.url))
    try:
        with ThreadPoolExecutor(2) as pool:  # started together: each takes seconds to import
            starting = [pool.submit(ServiceProcess, env, tmp_path) for _ in range(2)]
        servers = [f.result() for f in starting if f.exception() is None]  # stopped below
        for f in starting:
            f.result()  # a server that did not start fails the test here
        on = Instances(*servers)
        metrics_before = [_scrape(s) for s in servers]
        tokens = iter(org.tokens)

        # --- one request budget per token, whichever instance answers -------------------
        limited = next(tokens)
        codes = [
            on.call(n, "GET", "/v1/patients", "/v1/patients", limited).status_code
            for n in range(RATE + 2)
        ]
        assert codes == [200] * RATE + [429, 429]  # per instance it would be 2 x RATE

        # --- one failed-authentication budget per address ---------------------------------
        bad = "kap_" + "Q" * 43
        codes = [
            on.call(n, "GET", "/v1/patients", "/v1/patients", bad).status_code
            for n in range(FAILURES + 2)
        ]
        assert codes == [401] * FAILURES + [429, 429]

        # --- an Idempotency-Key holds across instances ------------------------------------
        keyed = next(tokens)
        body = {"external_id": "idem-across"}
        first = on.call(
            0, "POST", "/v1/patients", "/v1/patients", keyed, json=body,
            headers={"Idempotency-Key": "across-1"},
        )  # fmt: skip
        again = on.call(
            1, "POST", "/v1/patients", "/v1/patients", keyed, json=body,
            headers={"Idempotency-Key": "across-1"},
        )  # fmt: skip
        assert first.status_code == again.status_code == 201
        assert again.headers.get("idempotent-replayed") == "true"
        assert again.json()["id"] == first.json()["id"]
        other = on.call(
            1, "POST", "/v1/patients", "/v1/patients", keyed, json={"external_id": "idem-other"},
            headers={"Idempotency-Key": "across-1"},
        )  # fmt: skip
        assert other.status_code == 422  # the same key with another request
        acked_patients = {first.json()["id"]}

        # the same key sent to both instances at once: one patient, whatever the answers
        racing = next(tokens)

        def race(key: int) -> list[httpx.Response]:
            barrier = threading.Barrier(2)

            def send(n: int) -> httpx.Response:
                barrier.wait()
                return on.call(
                    n, "POST", "/v1/patients", "/v1/patients", racing,
                    json={"external_id": f"race-{key}"},
                    headers={"Idempotency-Key": f"race-{key}"},
                )  # fmt: skip

            with ThreadPoolExecutor(2) as pool:
                return list(pool.map(send, (0, 1)))

        for key in range(8):
            answers = race(key)
            statuses = sorted(r.status_code for r in answers)
            assert statuses in ([201, 201], [201, 409]), statuses
            ids = {r.json()["id"] for r in answers if r.status_code == 201}
            assert len(ids) == 1  # a replay, never a second patient
            acked_patients |= ids

        # --- writes from several clients, alternating ---------------------------------------
        acked_assessments: set[str] = set()
        review_patients: set[str] = set()
        lock = threading.Lock()

        def write(writer: int, token: str) -> None:
            for p in range(PATIENTS_EACH):
                n = writer + p
                resp = on.call(
                    n, "POST", "/v1/patients", "/v1/patients", token,
                    json={"external_id": f"w{writer}-p{p}"},
                )  # fmt: skip
                assert resp.status_code == 201, resp.text
                patient = resp.json()["id"]
                forms = [
                    ("phq9", PHQ9_REVIEW if (writer + p) % 3 == 0 else PHQ9_CALM),
                    ("gad7", GAD7),
                ]
                created = []
                for k, (instrument, items) in enumerate(forms):
                    resp = on.call(
                        n + k + 1, "POST", f"/v1/patients/{patient}/assessments",
                        "/v1/patients/{patient_id}/assessments", token,
                        json={
                            "instrument": instrument, "items": items,
                            "administered_at": f"2026-03-0{k + 1}T09:00:00Z",
                        },
                    )  # fmt: skip
                    assert resp.status_code == 201, resp.text
                    created.append(resp.json()["id"])
                with lock:
                    acked_patients.add(patient)
                    acked_assessments.update(created)
                    if forms[0][1] is PHQ9_REVIEW:
                        review_patients.add(patient)

        with ThreadPoolExecutor(WRITERS) as pool:
            for f in [pool.submit(write, w, next(tokens)) for w in range(WRITERS)]:
                f.result()

        # --- stored exactly once ------------------------------------------------------------
        def stored(table: str) -> list[str]:
            return list(
                db.run_read(
                    lambda c: (
                        c.execute(
                            text(f"SELECT id FROM {table} WHERE organisation_id = :o"),
                            {"o": org.org_id},
                        )
                        .scalars()
                        .all()
                    )
                )
            )

        patients_stored, assessments_stored = stored("patients"), stored("assessments")
        assert sorted(patients_stored) == sorted(acked_patients)  # no duplicate, none missing
        assert sorted(assessments_stored) == sorted(acked_assessments)
        assert len(acked_patients) == 1 + 8 + WRITERS * PATIENTS_EACH

        # --- one caseload, whichever instance answers ---------------------------------------
        reader = next(tokens)
        pages = [
            on.call(n, "GET", "/v1/caseload?limit=500", "/v1/caseload", reader).json()
            for n in (0, 1)
        ]
        # as_of is "now" when nothing is stale: two reads a few milliseconds apart differ there
        without_as_of = [{k: v for k, v in p.items() if k != "as_of"} for p in pages]
        assert without_as_of[0] == without_as_of[1]
        assert [p["stale_count"] for p in pages] == [0, 0]  # as fresh on both
        rows = pages[0]["data"]
        assert {r["patient_id"] for r in rows} == acked_patients
        flagged = [r["patient_id"] for r in rows if r["alert_level"] == "review"]
        assert set(flagged) == review_patients
        assert [r["patient_id"] for r in rows[: len(flagged)]] == flagged  # most pressing first

        # --- the worker brings every event once ----------------------------------------------
        expected = len(acked_patients) + len(acked_assessments) + len(review_patients)
        wait_for(
            lambda: len({r.headers["webhook-id"] for r in receiver.received}) >= expected,
            timeout=40,
            what=f"{expected} distinct deliveries",
            step=0.2,
        )
        assert worker.poll() is None, "the worker died"
        events = [json.loads(r.body) for r in receiver.received]
        created = {e["patient_id"] for e in events if e["type"] == "patient.created"}
        assert created == acked_patients
        submitted = {e["resource"]["id"] for e in events if e["type"] == "assessment.submitted"}
        assert submitted == acked_assessments
        opened = {e["patient_id"] for e in events if e["type"] == "alert.opened"}
        assert opened == review_patients
        retried = set(
            db.run_read(
                lambda c: (
                    c.execute(text("SELECT event_id FROM webhook_deliveries WHERE attempts > 1"))
                    .scalars()
                    .all()
                )
            )
        )
        per_id = Counter(r.headers["webhook-id"] for r in receiver.received)
        assert len(per_id) == expected
        assert {i for i, n in per_id.items() if n > 1} <= retried  # again only after a failure
        assert len(receiver.verified(org.secret)) == len(receiver.received)

        # --- each instance counted what it answered ------------------------------------------
        for server, before, answered in zip(servers, metrics_before, on.answered, strict=True):
            after = _scrape(server)
            for (method, route, status), count in answered.items():
                key = (method, route, str(status))
                assert after.get(key, 0) - before.get(key, 0) == count, key
        on.close()
    finally:
        for s in servers:
            s.stop()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
        worker_log.close()
        db.dispose()
        receiver.close()
