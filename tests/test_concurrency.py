"""Many writers on one patient at once (PostgreSQL: real concurrent transactions).

Eight clients submit PHQ-9s for the same patient through a real server process while other
clients read the caseload and the signals (which recompute the patient's summary as the
writes land) and race each other to resolve the alerts that open. Afterwards the stored data,
the alerts, the signals and the caseload must all tell the same story.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from kap_outcomes.db import Database

from .conftest import PG_URL, Tenant
from .processes import ServiceProcess, http_client, service_env

pytestmark = [
    pytest.mark.skipif(not PG_URL, reason="concurrent writers need PostgreSQL"),
    # one xdist worker runs the module: its module fixture starts the processes once
    pytest.mark.xdist_group("test_concurrency"),
]

WRITERS = 8
PER_WRITER = 10
BASE = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LEVEL_RANK = {"emergency": 0, "urgent": 1, "review": 2}


def items_for(seq: int) -> list[int]:
    """A distinct total per submission; item 9 is 0, 1 or 2 (no alert, review, urgent)."""
    return [seq % 4, (seq // 4) % 4, 1, 1, 1, 1, 1, 1, seq % 3]


def body_for(seq: int) -> dict[str, Any]:
    return {
        "instrument": "phq9",
        "items": items_for(seq),
        "administered_at": (BASE + timedelta(hours=seq)).isoformat(),
    }


def run_threads(targets: list[Callable[[], None]]) -> None:
    errors: list[BaseException] = []

    def guard(fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guard, args=(fn,)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a client thread hung"
    if errors:
        raise errors[0]


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    process = ServiceProcess(service_env(database_url), tmp_path_factory.mktemp("serve"))
    yield process
    process.stop()
    assert "Traceback" not in process.output(), process.output()


def _patient(http: httpx.Client) -> str:
    patient = http.post("/v1/patients", json={"external_id": f"conc-{uuid.uuid4()}"})
    assert patient.status_code == 201, patient.text
    return str(patient.json()["id"])


def all_at_once(count: int, request: Callable[[httpx.Client, int], httpx.Response]) -> list[Any]:
    """``count`` requests released together (a barrier), each from its own client."""
    barrier = threading.Barrier(count)
    responses: list[Any] = [None] * count

    def one(i: int) -> None:
        with http_client(timeout=60) as http:
            barrier.wait(timeout=30)
            responses[i] = request(http, i)

    run_threads([lambda i=i: one(i) for i in range(count)])
    return responses


def test_concurrent_writers_on_one_patient(
    server: ServiceProcess, tenant: Tenant, db: Database
) -> None:
    headers = tenant.headers()
    with http_client(base_url=server.base, headers=headers, timeout=60) as http:
        patient_id = _patient(http)
        _exercise(server.base, headers, patient_id)
        _check_consistency(http, db, patient_id)


def _courses(db: Database, patient_id: str) -> list[Any]:
    return db.run_read(
        lambda conn: list(
            conn.execute(
                text("SELECT id, ended_at FROM courses WHERE patient_id = :p"), {"p": patient_id}
            ).all()
        )
    )


def test_concurrent_first_doses_open_one_course(
    server: ServiceProcess, tenant: Tenant, db: Database
) -> None:
    """A dose with no active course opens one: racing first doses must share it."""
    headers = tenant.headers()
    with http_client(base_url=server.base, headers=headers, timeout=60) as http:
        patient_id = _patient(http)

        def dose(c: httpx.Client, i: int) -> httpx.Response:
            body = {
                "kind": "dosing",
                "occurred_at": (BASE + timedelta(days=i)).isoformat(),
                "dose": {"route": "im", "amount_mg": 50},
            }
            return c.post(
                f"{server.base}/v1/patients/{patient_id}/sessions", json=body, headers=headers
            )

        responses = all_at_once(8, dose)
        assert [r.status_code for r in responses] == [201] * 8, [r.text for r in responses]
        courses = _courses(db, patient_id)
        assert len(courses) == 1, courses
        assert {r.json()["course_id"] for r in responses} == {courses[0].id}
        signals = http.get(f"/v1/patients/{patient_id}/signals").json()
        assert signals["course_id"] == courses[0].id
        assert signals["booster"]["days_since_last_dose"] is not None


def test_concurrent_new_courses_leave_one_active(
    server: ServiceProcess, tenant: Tenant, db: Database
) -> None:
    """Creating a course closes the previous one, also when several are created at once."""
    headers = tenant.headers()
    with http_client(base_url=server.base, headers=headers, timeout=60) as http:
        patient_id = _patient(http)
        responses = all_at_once(
            6,
            lambda c, i: c.post(
                f"{server.base}/v1/patients/{patient_id}/courses",
                json={"label": f"course {i}"},
                headers=headers,
            ),
        )
        assert [r.status_code for r in responses] == [201] * 6, [r.text for r in responses]
        courses = _courses(db, patient_id)
        assert len(courses) == 6
        active = [c for c in courses if c.ended_at is None]
        assert len(active) == 1, courses


def _resolve_every_other_alert(
    base: str,
    headers: dict[str, str],
    patient_id: str,
    writing: threading.Event,
    resolutions: dict[str, list[int]],
) -> None:
    """Resolve every other alert that opens, two clients racing for each; one last pass
    once the writers are done, so that the race is run whatever the timing."""
    seen: set[str] = set()
    with http_client(base_url=base, headers=headers, timeout=60) as http:
        while True:
            last = not writing.is_set()
            page = http.get("/v1/alerts", params={"patient_id": patient_id, "limit": 500})
            assert page.status_code == 200, page.text
            fresh = [a["id"] for a in page.json()["data"] if a["id"] not in seen]
            seen.update(fresh)
            for alert_id in fresh[::2]:
                url = f"{base}/v1/alerts/{alert_id}/resolve"
                codes = all_at_once(
                    2, lambda c, _, url=url: c.post(url, json={"note": "seen"}, headers=headers)
                )
                resolutions[alert_id] = sorted(r.status_code for r in codes)
            if last:
                return


def _in_background(fn: Callable[[], None], errors: list[BaseException]) -> threading.Thread:
    """``fn`` in a thread of its own; what it raises is kept in ``errors``."""

    def guarded() -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=guarded)
    thread.start()
    return thread


def _exercise(base: str, headers: dict[str, str], patient_id: str) -> None:
    lock = threading.Lock()
    writing = threading.Event()
    writing.set()
    created: dict[int, dict[str, Any]] = {}
    statuses: Counter[int] = Counter()
    resolutions: dict[str, list[int]] = {}
    read_statuses: Counter[int] = Counter()

    def writer(w: int) -> None:
        with http_client(base_url=base, headers=headers, timeout=60) as http:
            for i in range(PER_WRITER):
                seq = w * PER_WRITER + i
                resp = http.post(f"/v1/patients/{patient_id}/assessments", json=body_for(seq))
                with lock:
                    statuses[resp.status_code] += 1
                    if resp.status_code == 201:
                        created[seq] = resp.json()

    def reader() -> None:
        with http_client(base_url=base, headers=headers, timeout=60) as http:
            while writing.is_set():
                for path in ("/v1/caseload", f"/v1/patients/{patient_id}/signals"):
                    code = http.get(path).status_code
                    with lock:
                        read_statuses[code] += 1

    def resolver() -> None:
        _resolve_every_other_alert(base, headers, patient_id, writing, resolutions)

    side_errors: list[BaseException] = []

    side = [_in_background(fn, side_errors) for fn in (reader, reader, resolver)]
    try:
        run_threads([lambda w=w: writer(w) for w in range(WRITERS)])
    finally:
        writing.clear()
        for t in side:
            t.join(timeout=120)
    assert not any(t.is_alive() for t in side), "a reader or resolver hung"
    if side_errors:
        raise side_errors[0]

    total = WRITERS * PER_WRITER
    assert statuses == {201: total}, statuses
    assert set(read_statuses) <= {200}, read_statuses
    assert resolutions, "no alert was resolved"
    for alert_id, codes in resolutions.items():
        assert codes == [200, 409], (alert_id, codes)  # exactly one resolution wins
    for seq, body in created.items():
        assert body["total"] == sum(items_for(seq))
        assert len(body["alerts"]) == (1 if items_for(seq)[8] >= 1 else 0)


def _check_consistency(http: httpx.Client, db: Database, patient_id: str) -> None:
    total = WRITERS * PER_WRITER

    def stored(conn: Any) -> tuple[list[Any], list[Any]]:
        assessments = conn.execute(
            text(
                "SELECT id, items, total, severity, administered_at FROM assessments"
                " WHERE patient_id = :p ORDER BY administered_at, id"
            ),
            {"p": patient_id},
        ).all()
        alerts = conn.execute(
            text("SELECT assessment_id, level, status FROM alerts WHERE patient_id = :p"),
            {"p": patient_id},
        ).all()
        return list(assessments), list(alerts)

    assessments, alerts = db.run_read(stored)
    assert len(assessments) == total  # as many rows as 201s: nothing lost, nothing doubled

    per_assessment = Counter(a.assessment_id for a in alerts)
    triggering = {a.id for a in assessments if a.items[8] >= 1}
    assert set(per_assessment) == triggering, "an alert is missing or belongs to no trigger"
    assert all(n == 1 for n in per_assessment.values()), "duplicate alerts"

    unresolved = [a for a in alerts if a.status != "resolved"]
    expected_level = min((a.level for a in unresolved), key=LEVEL_RANK.__getitem__, default="none")

    signals = http.get(f"/v1/patients/{patient_id}/signals")
    assert signals.status_code == 200, signals.text
    safety = signals.json()["safety"]
    assert safety["open_alerts"] == len(unresolved)
    assert safety["unacknowledged_alerts"] == sum(a.status == "open" for a in alerts)
    assert safety["level"] == expected_level

    latest = assessments[-1]
    caseload = http.get("/v1/caseload", params={"limit": 500})
    assert caseload.status_code == 200, caseload.text
    rows = [r for r in caseload.json()["data"] if r["patient_id"] == patient_id]
    assert len(rows) == 1
    row = rows[0]
    assert row["phq9"]["total"] == latest.total
    assert row["phq9"]["severity"] == latest.severity
    assert datetime.fromisoformat(row["phq9"]["administered_at"]) == latest.administered_at
    assert row["open_alerts"] == len(unresolved)
    assert row["alert_level"] == expected_level
    assert row["booster_status"] == signals.json()["booster"]["status"]
