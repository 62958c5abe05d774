"""GET /metrics: scraped over real HTTP from a real ``serve`` process and parsed with
prometheus-client's own parser; each counter must move by what the test sent."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from kap_outcomes.app import create_app
from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import ensure_organisation, issue_token
from kap_outcomes.config import Settings
from kap_outcomes.db import Database, make_engine

from .conftest import PG_URL, TEST_SIGNING_KEY
from .migrated import migrated_sqlite
from .processes import ServiceProcess, http_client, service_env, wait_for

# one xdist worker runs the module: its module fixture starts the server once
pytestmark = pytest.mark.xdist_group("test_metrics")

METRICS_TOKEN = secrets.token_urlsafe(32)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _token(url: str) -> str:
    db = Database(make_engine(url))
    try:
        return str(
            db.run_write(
                lambda c: issue_token(
                    c, organisation_id=ensure_organisation(c, "metrics"), role=Role.clinician
                )[1]
            )
        )
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, str]]:
    """``serve`` on an SQLite file of its own (the group commit is SQLite's), no worker: the
    events it records stay in the backlog."""
    tmp = tmp_path_factory.mktemp("metrics")
    url = migrated_sqlite(tmp / "kap.db")
    token = _token(url)
    env = service_env(url) | {
        "KAP_METRICS_TOKEN": METRICS_TOKEN,
        "KAP_WORKER_EMBEDDED": "false",
        "KAP_DB_POOL_SIZE": "7",
    }
    process = ServiceProcess(env, tmp)
    try:
        yield process, token
    finally:
        process.stop()


def _scrape(http: httpx.Client) -> Samples:
    resp = http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain; version=")
    return _samples(resp.text)


PHQ9_ITEM9_1 = [1, 2, 1, 0, 1, 2, 1, 0, 1]  # item 9 = 1: a review alert
PHQ9_ITEM9_3 = [0, 0, 0, 0, 0, 0, 0, 0, 3]  # item 9 = 3: an urgent alert
GAD7 = [1, 1, 1, 1, 1, 1, 1]  # no alert


@pytest.mark.skipif(bool(PG_URL), reason="brings its own SQLite server: runs in the SQLite run")
def test_counters_move_by_what_was_sent(server: tuple[ServiceProcess, str]) -> None:
    process, token = server
    auth = {"Authorization": f"Bearer {token}"}
    with http_client(base_url=process.base, headers=auth, timeout=20) as http:
        before = _scrape(http)
        patients = []
        for n in range(3):
            resp = http.post("/v1/patients", json={"external_id": f"metrics-{n}"})
            assert resp.status_code == 201
            patients.append(resp.json()["id"])
        missing = [str(uuid.uuid4()) for _ in range(5)]
        for patient_id in missing:
            assert http.get(f"/v1/patients/{patient_id}").status_code == 404
        for items, instrument in ((PHQ9_ITEM9_1, "phq9"), (PHQ9_ITEM9_3, "phq9"), (GAD7, "gad7")):
            resp = http.post(
                f"/v1/patients/{patients[0]}/assessments",
                json={
                    "instrument": instrument,
                    "items": items,
                    "administered_at": "2026-03-01T09:00:00Z",
                },
            )
            assert resp.status_code == 201, resp.text
        assert http.get("/no/such/route/" + patients[1]).status_code == 404
        after = _scrape(http)
        text = http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    requests = "kap_http_request_duration_seconds_count"
    assert moved(requests, method="POST", route="/v1/patients", status="201") == 3
    assert moved(requests, method="GET", route="/v1/patients/{patient_id}", status="404") == 5
    assert (
        moved(requests, method="POST", route="/v1/patients/{patient_id}/assessments", status="201")
        == 3
    )
    assert moved(requests, method="GET", route="unmatched", status="404") == 1
    assert moved("kap_assessments_submitted_total", instrument="phq9") == 2
    assert moved("kap_assessments_submitted_total", instrument="gad7") == 1
    assert moved("kap_alerts_opened_total", level="review") == 1
    assert moved("kap_alerts_opened_total", level="urgent") == 1
    # units of work committed: 3 patients and 3 assessments (each with its audit event), and
    # the audit event of each of the 5 reads refused (a read audits in a write of its own)
    assert moved("kap_db_group_commit_batch_size_sum") == 11
    assert 1 <= moved("kap_db_group_commit_batch_size_count") <= 11
    # no worker runs: every event is still waiting (3 patients, 3 assessments, 2 alerts)
    assert _value(after, "kap_event_backlog") - _value(before, "kap_event_backlog") == 8
    assert _value(after, "kap_metrics_database_up") == 1
    assert _value(after, "kap_db_pool_size") == 7
    assert _value(after, "kap_webhook_deliveries", state="failed") == 0
    # ids never reach a label (nor anything else in the exposition)
    for identifier in [*patients, *missing, token]:
        assert identifier not in text


@pytest.mark.skipif(bool(PG_URL), reason="brings its own SQLite server: runs in the SQLite run")
def test_the_metrics_token_is_required_when_set(server: tuple[ServiceProcess, str]) -> None:
    process, token = server
    with http_client(base_url=process.base, timeout=20) as http:
        assert http.get("/metrics").status_code == 401
        wrong = http.get("/metrics", headers={"Authorization": "Bearer " + "x" * 43})
        assert wrong.status_code == 401
        assert wrong.headers["content-type"] == "application/problem+json"
        # an API token is not the metrics token
        api = http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert api.status_code == 401
        assert _scrape(http)


def _served_by(path: Path) -> float:
    """GET /v1/patients answered by the one process whose file this is."""
    for metric in MultiProcessCollector.merge([str(path)]):
        for sample in metric.samples:
            labels = sample.labels
            if (
                sample.name == "kap_http_request_duration_seconds_count"
                and labels.get("route") == "/v1/patients"
                and labels.get("method") == "GET"
            ):
                return float(sample.value)
    return 0.0


def _app(database_url: str, **overrides: Any) -> TestClient:
    settings = Settings(
        database_url=database_url,
        signing_key=TEST_SIGNING_KEY,
        public_base_url="https://kap.example",
        rate_limit_per_minute=0,
        failed_auth_per_minute=0,
        **overrides,
    )
    return TestClient(create_app(settings), raise_server_exceptions=False)


def test_not_served_in_production_without_a_token(database_url: str) -> None:
    with _app(database_url, environment="production") as client:
        assert client.get("/metrics").status_code == 404
    with _app(database_url, environment="production", metrics_token=METRICS_TOKEN) as client:
        assert client.get("/metrics").status_code == 401
        ok = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert ok.status_code == 200
    with _app(database_url, environment="development") as client:  # open while developing
        assert client.get("/metrics").status_code == 200


def test_a_short_metrics_token_is_refused(database_url: str) -> None:
    with pytest.raises(ValueError, match="at least 32"):
        Settings(database_url=database_url, metrics_token="too-short")


def test_not_in_the_openapi_document(client: TestClient) -> None:
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


@pytest.mark.skipif(bool(PG_URL), reason="brings its own SQLite server: runs in the SQLite run")
def test_several_processes_behind_one_port_add_up(tmp_path: Path) -> None:
    """``serve --workers 2`` with PROMETHEUS_MULTIPROC_DIR: every scrape shows the requests of
    both processes, whichever answers it."""
    url = migrated_sqlite(tmp_path / "kap.db")
    token = _token(url)
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = service_env(url) | {
        "KAP_WORKER_EMBEDDED": "false",
        "KAP_ENVIRONMENT": "test",
        "KAP_SIGNING_KEY": TEST_SIGNING_KEY,
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
    }
    process = ServiceProcess(env, tmp_path, workers=2)
    try:
        auth = {"Authorization": f"Bearer {token}"}
        sent = 0

        def one_request(_: int) -> int:
            with http_client(base_url=process.base, timeout=20) as one:
                return one.get("/v1/patients", headers=auth).status_code

        def both_answered() -> bool:
            """Eight more requests on new connections at once; then whether each process has
            answered some. /readyz tells that one process is up, not both: the second may
            still be starting, and until it is the first accepts every connection."""
            nonlocal sent
            with ThreadPoolExecutor(8) as pool:
                assert list(pool.map(one_request, range(8))) == [200] * 8
            sent += 8
            return len([n for n in map(_served_by, multiproc.glob("histogram_*.db")) if n]) == 2

        wait_for(both_answered, timeout=60, what="both processes to answer", step=0)
        with http_client(base_url=process.base, timeout=20) as http:
            counts = set()
            for _ in range(6):
                samples = _samples(http.get("/metrics").text)
                counts.add(
                    _value(
                        samples,
                        "kap_http_request_duration_seconds_count",
                        method="GET",
                        route="/v1/patients",
                        status="200",
                    )
                )
        assert counts == {sent}
        served = [n for n in map(_served_by, multiproc.glob("histogram_*.db")) if n]
        assert len(served) == 2 and sum(served) == sent
    finally:
        process.stop()
