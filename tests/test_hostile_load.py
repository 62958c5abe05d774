"""Bounded work per request: while hostile bodies arrive, the process keeps answering.

One ~700-byte form whose answer is ``"1e200000"`` used to hold the interpreter for seconds
(``int(Decimal("1e200000"))``), and with it every other request of the process. Here a real
server process takes a stream of hostile bodies from several clients at once, on /v1, on
/fhir and at the token endpoint, while another client measures ``/healthz``. Every hostile
request must get a 4xx (never a 500), nothing may be stored, and ``/healthz`` must answer in
well under 100 ms throughout.

The only timed assertion of the suite, on purpose (issue #9); it runs once, on SQLite.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kap_outcomes.auth.models import Role

from .conftest import PG_URL, Tenant
from .processes import ServiceProcess, http_client, service_env

# one xdist worker runs the module: its module fixture starts the server once
pytestmark = pytest.mark.xdist_group("test_hostile_load")

PROBES = 200
HOSTILE_CLIENTS = 4
ROUNDS = 3
"""Each hostile client sends every hostile body this many times while /healthz is probed."""
DEADLINE_S = 120.0
P95_LIMIT_S = 0.100
"""The bound the issue sets."""
MAX_LIMIT_S = 1.0
"""No single probe waits a second: a stalled process makes one wait for seconds (and a few
stalls among hundreds of probes would not move the 95th percentile)."""

FHIR = {"content-type": "application/fhir+json"}
JSON = {"content-type": "application/json"}
PHQ9 = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3"]


def _form(patient_id: str, item9_answer: bytes) -> bytes:
    items = b",".join(
        b'{"linkId":"' + code.encode() + b'","answer":[{"valueInteger":0}]}' for code in PHQ9
    )
    return (
        b'{"resourceType":"QuestionnaireResponse","status":"completed",'
        b'"subject":{"reference":"Patient/' + patient_id.encode() + b'"},'
        b'"authored":"2026-03-02T15:00:00Z","item":[' + items + b","
        b'{"linkId":"44260-8","answer":[' + item9_answer + b"]}]}"
    )


def _assertion_with(claims: bytes) -> str:
    import base64

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    header = b64(b'{"alg":"RS384","kid":"k","typ":"JWT"}')
    return f"{header}.{b64(claims)}.{b64(b'not-a-signature')}"


def hostile_requests(patient_id: str) -> list[tuple[str, bytes, dict[str, str]]]:
    """(path, body, headers): each is refused; none may cost the process noticeable time."""
    v1 = f"/v1/patients/{patient_id}/assessments"
    fhir = "/fhir/R4/QuestionnaireResponse"
    zeros = b"[" + b",".join([b"0"] * 300_000) + b"]"  # ~600 KB, under the 1 MiB limit
    return [
        (fhir, _form(patient_id, b'{"valueDecimal":"1e200000"}'), FHIR),
        (fhir, _form(patient_id, b'{"valueInteger":1e200000}'), FHIR),
        (fhir, _form(patient_id, b'{"valueDecimal":"' + b"7" * 4000 + b'"}'), FHIR),
        (
            fhir,
            _form(patient_id, b'{"valueInteger":0}').replace(
                b"]}]}", b']},{"linkId":"44261-6","answer":[{"valueString":"1e200000"}]}]}'
            ),
            FHIR,
        ),
        (
            v1,
            b'{"instrument":"phq9","items":[0,0,0,0,0,0,0,0,' + b"3" * 4000 + b"],"
            b'"administered_at":"2026-03-02T15:04:05Z"}',
            JSON,
        ),
        (v1, b'{"instrument":"phq9","items":' + b"[" * 50_000 + b"]" * 50_000 + b"}", JSON),
        (v1, b'{"instrument":"phq9","items":' + zeros + b"}", JSON),
        (fhir, b'{"resourceType":"QuestionnaireResponse","item":' + zeros + b"}", FHIR),
        (
            f"/v1/patients/{patient_id}/sessions",
            b'{"kind":"dosing","occurred_at":"2026-03-02T15:04:05Z",'
            b'"dose":{"route":"iv","amount_mg":1e200000}}',
            JSON,
        ),
        (
            "/oauth/token",
            (
                "grant_type=client_credentials&scope=system/Patient.rs&client_assertion_type="
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion="
                + _assertion_with(b'{"iss":"x","exp":' + b"9" * 4000 + b"}")
            ).encode(),
            {"content-type": "application/x-www-form-urlencoded"},
        ),
    ]


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    process = ServiceProcess(service_env(database_url), tmp_path_factory.mktemp("hostile"))
    yield process
    process.stop()
    assert "Traceback" not in process.output(), process.output()


class Traffic:
    """What the hostile clients got, and how many rounds of all bodies each finished."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: list[int] = []
        self.rounds = [0] * HOSTILE_CLIENTS
        self.stop = threading.Event()
        self.start = threading.Barrier(HOSTILE_CLIENTS + 1, timeout=60)


def _hostile_client(
    base: str,
    token: str,
    requests: list[tuple[str, bytes, dict[str, str]]],
    traffic: Traffic,
    index: int,
) -> None:
    with http_client(base_url=base, timeout=120) as http:
        traffic.start.wait()
        while not traffic.stop.is_set():
            for path, body, headers in requests:
                auth = {} if path == "/oauth/token" else {"Authorization": f"Bearer {token}"}
                resp = http.post(path, content=body, headers=auth | headers)
                with traffic.lock:
                    traffic.statuses.append(resp.status_code)
            with traffic.lock:
                traffic.rounds[index] += 1


def _probe(base: str, traffic: Traffic) -> list[float]:
    """``/healthz`` back to back until there were :data:`PROBES` probes and every hostile
    client finished :data:`ROUNDS` rounds (or the deadline passed: then the numbers tell)."""
    latencies: list[float] = []
    with http_client(base_url=base, timeout=120) as http:
        assert http.get("/healthz").status_code == 200  # the connection is open
        traffic.start.wait()
        deadline = time.monotonic() + DEADLINE_S
        while len(latencies) < PROBES or min(traffic.rounds) < ROUNDS:
            started = time.perf_counter()
            resp = http.get("/healthz")
            latencies.append(time.perf_counter() - started)
            assert resp.status_code == 200
            if time.monotonic() > deadline:
                break
    return latencies


def _run(threads: list[Callable[[], None]]) -> None:
    started = [threading.Thread(target=t, daemon=True) for t in threads]
    for t in started:
        t.start()
    for t in started:
        t.join(timeout=DEADLINE_S + 120)
    assert not any(t.is_alive() for t in started), "a client hung"


@pytest.mark.skipif(bool(PG_URL), reason="the process, not the database, is under test")
def test_healthz_answers_quickly_while_hostile_bodies_are_processed(
    server: ServiceProcess, tenant: Tenant, count_rows: Any
) -> None:
    patient_id = tenant.patient()
    requests = hostile_requests(patient_id)
    for path, body, _ in requests:
        assert len(body) < 1024 * 1024, path
    traffic = Traffic()
    latencies: list[float] = []

    def probe() -> None:
        try:
            latencies.extend(_probe(server.base, traffic))
        finally:
            traffic.stop.set()

    token = tenant.tokens[Role.integration]
    _run(
        [
            *(
                lambda i=i: _hostile_client(server.base, token, requests, traffic, i)
                for i in range(HOSTILE_CLIENTS)
            ),
            probe,
        ]
    )

    statuses = traffic.statuses
    assert min(traffic.rounds) >= ROUNDS, f"rounds {traffic.rounds} in {DEADLINE_S} s"
    assert all(400 <= s < 500 for s in statuses), sorted(set(statuses))
    assert count_rows("assessments", tenant.org_id) == 0
    assert count_rows("alerts", tenant.org_id) == 0
    assert count_rows("care_sessions", tenant.org_id) == 0
    p95 = statistics.quantiles(latencies, n=20)[-1]
    summary = (
        f"/healthz p95 {p95 * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms, "
        f"median {statistics.median(latencies) * 1000:.0f} ms over {len(latencies)} probes "
        f"during {len(statuses)} hostile requests"
    )
    assert p95 < P95_LIMIT_S, summary
    assert max(latencies) < MAX_LIMIT_S, summary
