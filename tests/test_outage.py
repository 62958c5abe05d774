"""The database goes away and comes back: the service answers 503 meanwhile and recovers alone.

A PostgreSQL cluster of the test's own (initdb in a temporary directory, a free port) is
stopped under a running server process and started again; the process is never restarted.
Runs on every backend: it brings its own database.

The module's tests share one cluster and one server process (each its own organisation and
patients): every test starts with the cluster running and the server ready, whatever the test
before it did to them, and the process must come through all of their outages on its own.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from kap_outcomes.db import Database, make_engine
from kap_outcomes.errors import DomainError
from kap_outcomes.migrate import upgrade

from .processes import (
    ServiceProcess,
    ThrowawayPostgres,
    http_client,
    issue_token,
    service_env,
    wait_for,
)

QUICK = 8.0
"""Seconds an answer may take while the database is down (connect_timeout is 3 s)."""

PHQ9 = {"instrument": "phq9", "items": [1, 1, 1, 1, 1, 1, 1, 1, 0]}


# one xdist worker runs the module: its module fixtures start the cluster and the server once
pytestmark = pytest.mark.xdist_group("test_outage")


@pytest.fixture(scope="module")
def cluster() -> Iterator[ThrowawayPostgres]:
    pg = ThrowawayPostgres()
    try:
        pg.start()
        upgrade(pg.url)
        yield pg
    finally:
        pg.destroy()


@pytest.fixture(scope="module")
def shared_server(
    cluster: ThrowawayPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    server = ServiceProcess(service_env(cluster.url), tmp_path_factory.mktemp("outage"))
    try:
        yield server
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.output()


@pytest.fixture
def postgres(cluster: ThrowawayPostgres, shared_server: ServiceProcess) -> ThrowawayPostgres:
    """The cluster running and answering, the shared server ready on it, whatever the test
    before left them in."""
    cluster.restore()
    shared_server.wait_ready()
    return cluster


@pytest.fixture
def server(postgres: ThrowawayPostgres, shared_server: ServiceProcess) -> Iterator[ServiceProcess]:
    """The shared server; what it writes during the test may hold no traceback."""
    assert shared_server.alive, shared_server.output()
    since = len(shared_server.log())
    yield shared_server
    assert "Traceback" not in shared_server.log(since=since), shared_server.output(since=since)


def _token(url: str) -> str:
    """A clinician's token in an organisation of the test's own."""
    return issue_token(url, f"outage-{uuid.uuid4().hex[:12]}")


def _timed(http: httpx.Client, method: str, path: str, **kw: Any) -> httpx.Response:
    started = time.monotonic()
    resp = http.request(method, path, **kw)
    elapsed = time.monotonic() - started
    assert elapsed < QUICK, f"{method} {path} took {elapsed:.1f} s with the database down"
    return resp


def _assert_unavailable(resp: httpx.Response) -> None:
    assert resp.status_code == 503, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert int(resp.headers["retry-after"]) > 0
    body = resp.json()
    assert body["status"] == 503
    assert "Traceback" not in resp.text and "psycopg" not in resp.text.lower()


def test_database_outage_is_503_and_recovers_without_restart(
    postgres: ThrowawayPostgres, server: ServiceProcess
) -> None:
    headers = {"Authorization": f"Bearer {_token(postgres.url)}"}
    with http_client(base_url=server.base, headers=headers, timeout=30) as http:
        # database up
        patient = http.post("/v1/patients", json={"external_id": f"p-{uuid.uuid4()}"})
        assert patient.status_code == 201, patient.text
        submit = f"/v1/patients/{patient.json()['id']}/assessments"
        body = {**PHQ9, "administered_at": "2026-03-02T15:04:05Z"}
        created = http.post(submit, json=body)
        assert created.status_code == 201, created.text
        read = f"/v1/assessments/{created.json()['id']}"
        assert http.get(read).status_code == 200

        # database down: 503 problems, quickly, and the process stays up
        postgres.stop()
        for _ in range(3):  # the pool's connections are dead, then reconnecting fails
            _assert_unavailable(_timed(http, "POST", submit, json=body))
            _assert_unavailable(_timed(http, "GET", read))
            _assert_unavailable(_timed(http, "GET", "/v1/caseload"))
        readyz = _timed(http, "GET", "/readyz")
        assert readyz.status_code == 503, readyz.text
        assert readyz.headers["content-type"].startswith("application/problem+json")
        assert _timed(http, "GET", "/healthz").status_code == 200
        assert server.alive, server.output()

        # database back: the same process serves again by itself
        postgres.start()
        wait_for(
            lambda: http.post(submit, json=body).status_code == 201,
            timeout=20,
            what="a submission to succeed after the database came back",
            step=0.2,
        )
        assert http.get(read).status_code == 200
        assert http.get("/readyz").status_code == 200
        listed = http.get(f"{submit}?limit=500")
        assert listed.status_code == 200
        # the one before the outage and at least the one that succeeded after it;
        # none of the 503s stored anything
        assert len(listed.json()["data"]) == 2
        assert server.alive, server.output()


@dataclass
class Traffic:
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    statuses: Counter[int] = field(default_factory=Counter)
    acked: set[str] = field(default_factory=set)
    bad: list[str] = field(default_factory=list)

    def count(self, status: int) -> int:
        with self.lock:
            return self.statuses[status]


def _submitter(base: str, headers: dict[str, str], submit: str, traffic: Traffic) -> None:
    body = {**PHQ9, "administered_at": "2026-03-02T15:04:05Z"}
    with http_client(base_url=base, headers=headers, timeout=30) as http:
        while not traffic.stop.is_set():
            try:
                resp = http.post(submit, json=body)
                if resp.status_code == 503:
                    _assert_unavailable(resp)
            except (httpx.HTTPError, AssertionError) as exc:
                with traffic.lock:
                    traffic.bad.append(repr(exc))
                return
            with traffic.lock:
                traffic.statuses[resp.status_code] += 1
                if resp.status_code == 201:
                    traffic.acked.add(resp.json()["id"])
                elif resp.status_code != 503:
                    traffic.bad.append(f"{resp.status_code} {resp.text[:300]}")


def test_traffic_through_an_outage_is_201_or_503_and_loses_no_201(
    postgres: ThrowawayPostgres, server: ServiceProcess
) -> None:
    """Submissions keep arriving while the database stops and starts under them: each one is
    a 201 (and stored) or a clean 503, never a 500, a dropped connection or a lost write."""
    headers = {"Authorization": f"Bearer {_token(postgres.url)}"}
    traffic = Traffic()
    threads: list[threading.Thread] = []
    try:
        with http_client(base_url=server.base, headers=headers, timeout=30) as http:
            patient = http.post("/v1/patients", json={"external_id": f"p-{uuid.uuid4()}"})
            assert patient.status_code == 201, patient.text
            submit = f"/v1/patients/{patient.json()['id']}/assessments"
            threads = [
                threading.Thread(target=_submitter, args=(server.base, headers, submit, traffic))
                for _ in range(4)
            ]
            for t in threads:
                t.start()

            def reached(status: int, n: int) -> Callable[[], bool]:
                return lambda: traffic.count(status) >= n or bool(traffic.bad)

            wait_for(reached(201, 20), timeout=20, what="submissions to succeed")
            postgres.stop()
            wait_for(reached(503, 20), timeout=20, what="submissions to be refused")
            readyz = _timed(http, "GET", "/readyz")  # under load, still quick
            assert readyz.status_code == 503, readyz.text
            acked_before = traffic.count(201)
            postgres.start()
            wait_for(reached(201, acked_before + 20), timeout=20, what="submissions to resume")
            traffic.stop.set()
            for t in threads:
                t.join(timeout=60)
            assert not traffic.bad, traffic.bad[:5]
            assert set(traffic.statuses) == {201, 503}, traffic.statuses

            stored: set[str] = set()
            cursor: str | None = None
            while True:
                params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
                page = http.get(submit, params=params)
                assert page.status_code == 200, page.text
                stored |= {a["id"] for a in page.json()["data"]}
                if (cursor := page.json()["next_cursor"]) is None:
                    break
            assert traffic.acked <= stored, "an acknowledged submission was lost"
            # a 503 may hide a commit whose answer the outage swallowed, never more
            assert len(stored) <= traffic.count(201) + traffic.count(503)
            assert server.alive, server.output()
    finally:
        traffic.stop.set()
        for t in threads:
            t.join(timeout=60)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError("server closed the connection unexpectedly"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.errors.DeadlockDetected("deadlock detected"),
    ],
    ids=["closed", "admin-shutdown", "deadlock"],
)
def test_driver_level_database_errors_are_503(error: Exception, tmp_path: Path) -> None:
    """The hot statements run on the DBAPI cursor, past SQLAlchemy's exception wrapping: a
    driver's own OperationalError (the server went away, a deadlock victim) must still be a
    503 with Retry-After, not a 500."""
    db = Database(make_engine(f"sqlite:///{tmp_path / 'x.db'}"))

    def fail(_conn: Any) -> None:
        raise error

    try:
        for run in (db.run_write, db.run_read):
            with pytest.raises(DomainError) as caught:
                run(fail)
            assert caught.value.status == 503
            assert caught.value.headers["Retry-After"]
            assert caught.value.__cause__ is error
    finally:
        db.dispose()


def test_readyz_answers_quickly_while_the_database_hangs(
    postgres: ThrowawayPostgres, server: ServiceProcess
) -> None:
    """A server that accepts connections but never answers (frozen): /readyz says 503 within
    a few seconds instead of hanging in a pooled connection's pre-ping, and 200 once it
    answers again."""
    headers = {"Authorization": f"Bearer {_token(postgres.url)}"}
    with http_client(base_url=server.base, headers=headers, timeout=30) as http:
        # the pool holds idle connections to the server
        assert http.post("/v1/patients", json={"external_id": "p-1"}).status_code == 201
        assert http.get("/readyz").status_code == 200
        postgres.freeze()
        try:
            for _ in range(2):
                readyz = _timed(http, "GET", "/readyz")
                assert readyz.status_code == 503, readyz.text
                assert readyz.headers["content-type"].startswith("application/problem+json")
            assert _timed(http, "GET", "/healthz").status_code == 200
        finally:
            postgres.thaw()
        wait_for(
            lambda: http.get("/readyz").status_code == 200,
            timeout=20,
            what="/readyz to recover",
            step=0.2,
        )
        assert http.get("/v1/patients").status_code == 200
        assert server.alive, server.output()
