"""GET /v1/events: cursor, filters, long-poll, Server-Sent Events, who sees what (issue #11, 2)."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import text

from ..conftest import PG_URL
from ..processes import free_port, http_client, wait_for
from .served import settled

PHQ9 = {
    "instrument": "phq9",
    "items": [1, 1, 1, 1, 1, 1, 1, 1, 0],
    "administered_at": "2026-03-02T15:04:05Z",
}
PHQ9_ITEM9 = PHQ9 | {"items": [1, 1, 1, 1, 1, 1, 1, 1, 2]}


def _page(tenant, headers=None, **params: Any) -> dict[str, Any]:
    resp = tenant.client.get("/v1/events", params=params, headers=headers or tenant.headers())
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_cursor_pages_through_the_log_and_waits_at_its_end(tenant):
    pids = [tenant.patient() for _ in range(5)]
    settled(tenant)
    first = _page(tenant, limit=2)
    second = _page(tenant, limit=2, after=first["next_cursor"])
    third = _page(tenant, limit=2, after=second["next_cursor"])
    seen = [e["patient_id"] for e in first["data"] + second["data"] + third["data"]]
    assert seen == pids
    end = _page(tenant, after=third["next_cursor"])
    assert end["data"] == [] and end["next_cursor"]
    pid = tenant.patient()
    at_the_end = _page(tenant, after=end["next_cursor"], wait=15)["data"]  # answers once served
    assert [e["patient_id"] for e in at_the_end] == [pid]


def test_filters_by_type_and_patient(tenant):
    one, two = tenant.patient(), tenant.patient()
    tenant.post(f"/v1/patients/{one}/assessments", PHQ9_ITEM9)
    tenant.post(f"/v1/patients/{two}/assessments", PHQ9)
    settled(tenant)
    alerts = _page(tenant, types="alert.opened")["data"]
    assert [e["patient_id"] for e in alerts] == [one]
    both = _page(tenant, types="assessment.submitted,patient.created", patient_id=two)["data"]
    assert [e["type"] for e in both] == ["patient.created", "assessment.submitted"]


@pytest.mark.parametrize(
    "params",
    [{"types": "assessment.deleted"}, {"after": "not-a-cursor"}, {"wait": 31}, {"wait": -1}],
)
def test_bad_parameters_are_422(tenant, params):
    resp = tenant.get("/v1/events", params=params)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")


def test_another_organisation_sees_nothing(tenant, make_tenant):
    tenant.patient()
    settled(tenant)
    other = make_tenant()
    assert _page(other)["data"] == []


def test_a_patient_token_sees_only_its_own_assessment_events(tenant):
    mine, theirs = tenant.patient(), tenant.patient()
    tenant.post(f"/v1/patients/{mine}/assessments", PHQ9_ITEM9)
    tenant.post(f"/v1/patients/{theirs}/assessments", PHQ9)
    settled(tenant)
    headers = tenant.patient_token(mine)
    events = _page(tenant, headers=headers)["data"]
    assert [(e["type"], e["patient_id"]) for e in events] == [("assessment.submitted", mine)]
    assert _page(tenant, headers=headers, types="alert.opened")["data"] == []
    resp = tenant.client.get("/v1/events", params={"patient_id": theirs}, headers=headers)
    assert resp.status_code == 404


def test_long_poll_answers_when_an_event_arrives(tenant):
    pid = tenant.patient()
    settled(tenant)
    cursor = _page(tenant)["next_cursor"]
    result: dict[str, Any] = {}

    def poll() -> None:
        started = time.monotonic()
        result["page"] = _page(tenant, after=cursor, wait=30)
        result["took"] = time.monotonic() - started

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.3)  # the poll is waiting (nothing after the cursor yet)
    assert "page" not in result
    tenant.post(f"/v1/patients/{pid}/assessments", PHQ9)
    poller.join(35)
    assert [e["type"] for e in result["page"]["data"]] == ["assessment.submitted"]
    assert result["took"] < 20, "answered when the event arrived, not at the end of the wait"


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL's rule: SQLite commits one writer at a time")
def test_an_older_write_still_running_holds_newer_events_back_and_none_is_skipped(tenant):
    """A reader sees only events of transactions older than every transaction still writing:
    an event that commits while an older transaction runs is not served yet, the cursor does
    not pass it, and a long-poll answers with it once the older transaction has ended."""
    settled(tenant)
    cursor = _page(tenant)["next_cursor"]
    with tenant.db.engine.connect() as older:
        older.begin()
        older.execute(text("SELECT pg_current_xact_id()"))  # a writer: it holds a transaction id
        pid = tenant.patient()  # commits its patient.created after the older one began
        held = _page(tenant, after=cursor)
        assert held == {"data": [], "next_cursor": cursor}
        result: dict[str, Any] = {}
        poller = threading.Thread(
            target=lambda: result.update(_page(tenant, after=held["next_cursor"], wait=20))
        )
        poller.start()
        time.sleep(0.3)
        assert not result, "answered while the older transaction was still running"
        older.rollback()
    poller.join(25)
    assert [(e["type"], e["patient_id"]) for e in result["data"]] == [("patient.created", pid)]


def test_long_poll_without_events_answers_empty_after_the_wait(tenant):
    tenant.patient()
    settled(tenant)
    cursor = _page(tenant)["next_cursor"]
    page = _page(tenant, after=cursor, wait=0.2)
    assert page == {"data": [], "next_cursor": cursor}


@pytest.fixture
def live(client):
    """The suite's app behind a real HTTP server (a stream needs a real connection)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(client.app, host="127.0.0.1", port=port, lifespan="off", log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10, what="the test server")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _read_sse(
    http: httpx.Client, url: str, headers: dict[str, str], count: int
) -> list[dict[str, str]]:
    events: list[dict[str, str]] = []
    with http.stream("GET", url, headers=headers | {"Accept": "text/event-stream"}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        current: dict[str, str] = {}
        for line in resp.iter_lines():
            if not line:
                if "data" in current:
                    events.append(current)
                    if len(events) == count:
                        break
                current = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(": ")
                current[field] = value
    return events


def test_server_sent_events_stream_and_resume_with_last_event_id(tenant, live):
    pids = [tenant.patient() for _ in range(3)]
    url = f"{live}/v1/events"
    with http_client(timeout=10) as http:
        first = _read_sse(http, url, tenant.headers(), 2)
        assert [e["event"] for e in first] == ["patient.created", "patient.created"]
        resumed = _read_sse(http, url, tenant.headers() | {"Last-Event-ID": first[-1]["id"]}, 1)
        assert '"patient_id":"' + pids[2] + '"' in resumed[0]["data"]

        got: list[dict[str, str]] = []
        reader = threading.Thread(
            target=lambda: got.extend(
                _read_sse(http, url, tenant.headers() | {"Last-Event-ID": resumed[0]["id"]}, 1)
            )
        )
        reader.start()
        time.sleep(0.3)
        tenant.post(f"/v1/patients/{pids[0]}/assessments", PHQ9)
        reader.join(15)
        assert [e["event"] for e in got] == ["assessment.submitted"]


def test_a_stream_is_refused_like_any_request(tenant, live):
    with http_client(timeout=10) as http:
        resp = http.get(f"{live}/v1/events", headers={"Accept": "text/event-stream"})
        assert resp.status_code == 401
        resp = http.get(
            f"{live}/v1/events",
            headers=tenant.headers() | {"Accept": "text/event-stream", "Last-Event-ID": "x"},
        )
        assert resp.status_code == 422
        assert resp.headers["content-type"].startswith("application/problem+json")


def test_patient_role_in_the_stream(tenant, live):
    pid = tenant.patient()
    tenant.post(f"/v1/patients/{pid}/assessments", PHQ9_ITEM9)
    with http_client(timeout=10) as http:
        events = _read_sse(http, f"{live}/v1/events", tenant.patient_token(pid), 1)
    assert [e["event"] for e in events] == ["assessment.submitted"]
