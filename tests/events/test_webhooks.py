"""Webhooks: management, signed delivery, retries, disabling, redelivery, SSRF refusals
(issue #11, 3 and 5). Deliveries go to a real receiver on 127.0.0.1, sent by a real worker."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from kap_outcomes.app import create_app
from kap_outcomes.auth.models import Role

from ..processes import wait_for

PHQ9_ITEM9 = {
    "instrument": "phq9",
    "items": [1, 1, 1, 1, 1, 1, 1, 1, 2],
    "administered_at": "2026-03-02T15:04:05Z",
}
LOOPBACK = ["127.0.0.0/8"]


def _register(tenant, url: str, types: list[str] | None = None) -> dict[str, Any]:
    resp = tenant.post(
        "/v1/webhooks",
        {"url": url, "event_types": types or ["assessment.submitted", "alert.opened"]},
        role=Role.admin,
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def _deliveries(tenant, hook_id: str) -> list[dict[str, Any]]:
    resp = tenant.get(f"/v1/webhooks/{hook_id}/deliveries", role=Role.admin)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def _hook(tenant, hook_id: str) -> dict[str, Any]:
    return tenant.get(f"/v1/webhooks/{hook_id}", role=Role.admin).json()


@pytest.fixture(scope="module")
def strict(settings):
    """The app as installed: no network admitted beyond the public ones."""
    app = create_app(settings.model_copy(update={"webhook_allowed_networks": []}))
    return TestClient(app, raise_server_exceptions=False)


# --- management -----------------------------------------------------------------------------


def test_register_list_change_delete(tenant, make_tenant):
    hook = _register(tenant, "https://hooks.example.org/kap", ["alert.opened"])
    assert hook["secret"].startswith("whsec_")
    assert hook["enabled"] is True and hook["event_types"] == ["alert.opened"]
    listed = tenant.get("/v1/webhooks", role=Role.admin).json()["data"]
    assert [h["id"] for h in listed] == [hook["id"]]
    assert (
        "secret" not in listed[0]
        and hook["secret"] not in tenant.get(f"/v1/webhooks/{hook['id']}", role=Role.admin).text
    )

    path = f"/v1/webhooks/{hook['id']}"
    read = tenant.get(path, role=Role.admin)
    etag = read.headers["etag"]
    change = {"event_types": ["alert.opened", "signal.changed"]}
    assert (
        tenant.client.patch(path, json=change, headers=tenant.headers(Role.admin)).status_code
        == 428
    )
    stale = tenant.client.patch(
        path, json=change, headers=tenant.headers(Role.admin) | {"If-Match": '"99"'}
    )
    assert stale.status_code == 412
    changed = tenant.client.patch(
        path, json=change, headers=tenant.headers(Role.admin) | {"If-Match": etag}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["event_types"] == ["alert.opened", "signal.changed"]
    assert changed.headers["etag"] != etag

    rotated = tenant.post(f"{path}/rotate-secret", {}, role=Role.admin).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != hook["secret"]

    other = make_tenant()
    assert other.get(path, role=Role.admin).status_code == 404
    assert tenant.get(path, role=Role.clinician).status_code == 403
    assert tenant.client.delete(path, headers=tenant.headers(Role.admin)).status_code == 204
    assert tenant.get(path, role=Role.admin).status_code == 404


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://hooks.example.org/x", "only http and https"),
        ("https://user:pw@hooks.example.org/x", "credentials"),
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://100.64.0.1/hook", "non-public"),
    ],
)
def test_refused_urls_are_422_at_registration(tenant, strict, url, why):
    resp = strict.post(
        "/v1/webhooks",
        json={"url": url, "event_types": ["alert.opened"]},
        headers=tenant.headers(Role.admin),
    )
    assert resp.status_code == 422, resp.text
    assert why in resp.json()["errors"][0]["detail"]
    assert tenant.get("/v1/webhooks", role=Role.admin).json()["data"] == []


# --- delivery -------------------------------------------------------------------------------


def test_deliveries_are_signed_and_verified_by_the_standard_verifier(
    tenant, receiver, start_worker
):
    hook = _register(tenant, receiver.url)
    start_worker(webhook_allowed_networks=LOOPBACK)
    pid = tenant.patient("ehr-do-not-leak")
    created = tenant.post(f"/v1/patients/{pid}/assessments", PHQ9_ITEM9).json()
    wait_for(lambda: len(receiver.received) >= 2, timeout=15, what="two deliveries")

    payloads = receiver.verified(hook["secret"])
    assert sorted(p["type"] for p in payloads) == ["alert.opened", "assessment.submitted"]
    submitted = next(p for p in payloads if p["type"] == "assessment.submitted")
    assert submitted["resource"] == {"type": "assessment", "id": created["id"]}
    assert submitted["patient_id"] == pid
    for r, payload in zip(receiver.received, payloads, strict=True):
        assert r.headers["webhook-id"] == payload["id"]  # the event id: an idempotency key
        assert r.headers["webhook-signature"].startswith("v1,")
        assert b"ehr-do-not-leak" not in r.body and b'"items"' not in r.body
    wait_for(
        lambda: all(d["status"] == "succeeded" for d in _deliveries(tenant, hook["id"])),
        timeout=10,
        what="the deliveries recorded as succeeded",
    )
    delivery = _deliveries(tenant, hook["id"])[0]
    assert delivery["attempts"][0]["status_code"] == 200
    assert delivery["attempts"][0]["succeeded"] is True


def test_after_a_rotation_both_secrets_verify(tenant, receiver, start_worker):
    hook = _register(tenant, receiver.url)
    rotated = tenant.post(f"/v1/webhooks/{hook['id']}/rotate-secret", {}, role=Role.admin).json()
    start_worker(webhook_allowed_networks=LOOPBACK)
    tenant.post(f"/v1/patients/{tenant.patient()}/assessments", PHQ9_ITEM9 | {"items": [0] * 9})
    wait_for(lambda: receiver.received, timeout=15, what="a delivery")
    assert len(receiver.received[0].headers["webhook-signature"].split(" ")) == 2
    assert receiver.verified(rotated["secret"]) == receiver.verified(hook["secret"])


def test_retries_after_500s_and_timeouts_until_it_succeeds(tenant, receiver, start_worker):
    answers = {1: 500, 2: (2.0, 200), 3: 200}  # a 500, then too slow (timeout 1 s), then fine
    receiver.respond = lambda n: answers.get(n, 200)
    hook = _register(tenant, receiver.url, ["patient.created"])
    start_worker(webhook_allowed_networks=LOOPBACK, webhook_retry_schedule_s=[0.1, 0.1, 0.1])
    tenant.patient()
    wait_for(
        lambda: [d["status"] for d in _deliveries(tenant, hook["id"])] == ["succeeded"],
        timeout=20,
        what="the delivery to succeed on its third attempt",
    )
    attempts = _deliveries(tenant, hook["id"])[0]["attempts"]
    assert [(a["status_code"], a["succeeded"]) for a in attempts] == [
        (500, False),
        (None, False),
        (200, True),
    ]
    assert attempts[0]["error"] == "HTTP 500"
    assert "timed out" in attempts[1]["error"]
    # the same event each time: its id is the receiver's idempotency key
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    assert _hook(tenant, hook["id"])["consecutive_failures"] == 0


def test_an_endpoint_that_keeps_failing_is_disabled_then_redelivered(
    tenant, receiver, start_worker
):
    receiver.respond = lambda n: 503
    hook = _register(tenant, receiver.url, ["patient.created"])
    start_worker(webhook_allowed_networks=LOOPBACK, webhook_retry_schedule_s=[0.1, 0.1])
    tenant.patient()
    wait_for(
        lambda: not _hook(tenant, hook["id"])["enabled"],
        timeout=20,
        what="the endpoint to be disabled",
    )
    state = _hook(tenant, hook["id"])
    assert "HTTP 503" in state["disabled_reason"] and "3 times" in state["disabled_reason"]
    assert state["last_error"] == "HTTP 503" and state["consecutive_failures"] == 3
    (failed,) = _deliveries(tenant, hook["id"])
    assert failed["status"] == "failed" and len(failed["attempts"]) == 3
    assert len(receiver.received) == 3

    redeliver = f"/v1/webhooks/{hook['id']}/deliveries/{failed['id']}/redeliver"
    assert tenant.post(redeliver, {}, role=Role.admin).status_code == 409  # disabled
    receiver.respond = lambda n: 200
    etag = tenant.get(f"/v1/webhooks/{hook['id']}", role=Role.admin).headers["etag"]
    enabled = tenant.client.patch(
        f"/v1/webhooks/{hook['id']}",
        json={"enabled": True},
        headers=tenant.headers(Role.admin) | {"If-Match": etag},
    )
    assert enabled.status_code == 200 and enabled.json()["disabled_reason"] is None
    resp = tenant.post(redeliver, {}, role=Role.admin)
    assert resp.status_code == 202, resp.text
    wait_for(
        lambda: _deliveries(tenant, hook["id"])[0]["status"] == "succeeded",
        timeout=15,
        what="the redelivery",
    )
    assert len(_deliveries(tenant, hook["id"])[0]["attempts"]) == 4
    assert receiver.received[-1].headers["webhook-id"] == receiver.received[0].headers["webhook-id"]


def test_a_name_that_resolves_to_a_refused_address_is_refused_at_delivery(
    tenant, receiver, start_worker
):
    """``localhost`` passes registration (names are checked where they are used) and is
    refused at delivery, where it resolves to 127.0.0.1: the receiver never hears of it."""
    hook = _register(tenant, f"http://localhost:{receiver.port}/hook", ["patient.created"])
    start_worker(webhook_allowed_networks=[], webhook_retry_schedule_s=[0.1])
    tenant.patient()
    wait_for(
        lambda: not _hook(tenant, hook["id"])["enabled"],
        timeout=15,
        what="the refused endpoint to be disabled",
    )
    attempts = _deliveries(tenant, hook["id"])[0]["attempts"]
    assert attempts[0]["status_code"] is None
    assert attempts[0]["error"].startswith("refused: localhost resolves to ")
    assert "loopback" in attempts[0]["error"]
    assert receiver.received == []


def test_an_allowed_network_admits_the_loopback_receiver_by_name(tenant, receiver, start_worker):
    hook = _register(tenant, f"http://localhost:{receiver.port}/hook", ["patient.created"])
    start_worker(webhook_allowed_networks=["127.0.0.0/8", "::1/128"])
    tenant.patient()
    wait_for(lambda: receiver.received, timeout=15, what="the delivery")
    assert receiver.received[0].headers["host"] == f"localhost:{receiver.port}"
    assert receiver.verified(hook["secret"])[0]["type"] == "patient.created"


def test_redirects_are_not_followed(tenant, receiver, start_worker):
    receiver.respond = lambda n: 302 if n == 1 else 200
    hook = _register(tenant, receiver.url, ["patient.created"])
    start_worker(webhook_allowed_networks=LOOPBACK, webhook_retry_schedule_s=[0.1])
    tenant.patient()
    wait_for(
        lambda: [d["status"] for d in _deliveries(tenant, hook["id"])] == ["succeeded"],
        timeout=15,
        what="the retry after the redirect",
    )
    first = _deliveries(tenant, hook["id"])[0]["attempts"][0]
    assert first["status_code"] == 302 and "redirects are not followed" in first["error"]
    assert [r.path for r in receiver.received] == ["/hook", "/hook"]  # never /elsewhere


def test_events_before_registration_are_not_sent(tenant, receiver, start_worker):
    tenant.patient()
    hook = _register(tenant, receiver.url, ["patient.created"])
    pid = tenant.patient()
    start_worker(webhook_allowed_networks=LOOPBACK)
    wait_for(lambda: receiver.received, timeout=15, what="the delivery")
    assert [p["patient_id"] for p in receiver.verified(hook["secret"])] == [pid]


def test_connections_are_pooled_per_checked_address_and_https_name() -> None:
    """A kept-alive connection is reused only where the check passed: plain http by the
    checked address (the URL sent names it), https also by host name (the certificate the
    connection was verified against), so two names on one address never share TLS."""
    import asyncio

    from kap_outcomes.webhooks.egress import Connections, parse_url

    async def pools() -> list[object]:
        async with Connections() as connections:
            return [
                connections.for_target(parse_url(url))
                for url in (
                    "http://a.example/hook",
                    "http://b.example/hook",
                    "https://a.example/hook",
                    "https://b.example/hook",
                    "https://a.example/other",
                )
            ]

    http_a, http_b, https_a, https_b, https_a_again = asyncio.run(pools())
    assert http_a is http_b  # one pool; its connections are keyed by the checked address
    assert https_a is not https_b and https_a is not http_a
    assert https_a_again is https_a


def test_a_stopping_worker_hands_back_the_deliveries_it_never_attempted(
    tenant, receiver, start_worker, db
):
    """A round leases more deliveries than it has slots (here 1 slot, 3 deliveries). When the
    worker stops, the attempt under way ends and is recorded; the others are not started and
    their leases are handed back, so another worker can take them at once."""
    from sqlalchemy import text

    receiver.respond = lambda n: (0.5, 200)  # the first attempt is still under way at the stop
    hook = _register(tenant, receiver.url, ["patient.created"])
    for _ in range(3):
        tenant.patient()
    worker = start_worker(webhook_allowed_networks=LOOPBACK, webhook_concurrency=1)
    wait_for(lambda: receiver.received, timeout=15, what="the first attempt")
    worker.stop()
    rows = db.run_read(
        lambda c: c.execute(
            text(
                "SELECT status, attempts, lease_owner, lease_until FROM webhook_deliveries"
                " WHERE endpoint_id = :e ORDER BY status DESC"
            ),
            {"e": hook["id"]},
        ).all()
    )
    assert len(receiver.received) == 1
    assert [tuple(r) for r in rows] == [
        ("succeeded", 1, None, None),
        ("pending", 0, None, None),
        ("pending", 0, None, None),
    ]
