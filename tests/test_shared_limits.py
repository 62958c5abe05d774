"""Limits shared through Redis (KAP_REDIS_URL): two app instances draw on one budget, and
what each budget does while Redis does not answer.

Every test uses a key prefix of its own, so that parallel runs on the machine's Redis never
share a count. Redis is the machine's (127.0.0.1:6379, or KAP_TEST_REDIS_URL); the test that
kills a Redis starts a ``redis-server`` of its own on a free port.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from kap_outcomes import limiter
from kap_outcomes.app import create_app
from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import ensure_organisation, issue_token
from kap_outcomes.config import Settings

from .conftest import TEST_SIGNING_KEY
from .processes import free_port, redis_answers, wait_for


def _app(database_url: str, **overrides: Any) -> TestClient:
    defaults = {"environment": "test", "rate_limit_per_minute": 0, "failed_auth_per_minute": 0}
    settings = Settings(
        database_url=database_url, signing_key=TEST_SIGNING_KEY, **(defaults | overrides)
    )
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture
def token(db) -> str:
    def create(conn: Any) -> str:
        org = ensure_organisation(conn, f"shared-limits-{uuid.uuid4().hex[:8]}")
        return issue_token(conn, organisation_id=org, role=Role.clinician)[1]

    return str(db.run_write(create))


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


BAD = _auth("kap_" + "Q" * 43)


def _unavailable(limit: str) -> float:
    return REGISTRY.get_sample_value("kap_shared_limit_unavailable_total", {"limit": limit}) or 0


def _closed_port_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there


def test_two_instances_share_one_request_budget(database_url, redis_url, redis_prefix, token):
    shared = {"redis_url": redis_url, "redis_key_prefix": redis_prefix, "rate_limit_per_minute": 4}
    with _app(database_url, **shared) as a, _app(database_url, **shared) as b:
        codes = [
            (a if n % 2 == 0 else b).get("/v1/patients", headers=_auth(token)).status_code
            for n in range(6)
        ]
        # 4 a minute in all, whichever instance answers (alone, each would have allowed 4)
        assert codes == [200, 200, 200, 200, 429, 429]
        limited = b.get("/v1/patients", headers=_auth(token))
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert 30 <= int(limited.headers["retry-after"]) <= 60  # the window began seconds ago


def test_without_redis_each_instance_counts_alone(database_url, token):
    with (
        _app(database_url, rate_limit_per_minute=4) as a,
        _app(database_url, rate_limit_per_minute=4) as b,
    ):
        codes = [
            (a if n % 2 == 0 else b).get("/v1/patients", headers=_auth(token)).status_code
            for n in range(10)
        ]
        assert codes == [200] * 8 + [429, 429]


def test_another_prefix_is_another_budget(database_url, redis_url, redis_prefix, token):
    with (
        _app(
            database_url,
            redis_url=redis_url,
            redis_key_prefix=redis_prefix,
            rate_limit_per_minute=2,
        ) as a,
        _app(
            database_url,
            redis_url=redis_url,
            redis_key_prefix=redis_prefix + "-other",
            rate_limit_per_minute=2,
        ) as b,
    ):
        assert [a.get("/v1/patients", headers=_auth(token)).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        assert b.get("/v1/patients", headers=_auth(token)).status_code == 200


def test_two_instances_share_the_failed_authentication_throttle(
    database_url, redis_url, redis_prefix, token
):
    shared = {"redis_url": redis_url, "redis_key_prefix": redis_prefix, "failed_auth_per_minute": 3}
    with _app(database_url, **shared) as a, _app(database_url, **shared) as b:
        codes = [(a, b)[n % 2].get("/v1/patients", headers=BAD).status_code for n in range(5)]
        assert codes == [401, 401, 401, 429, 429]
        # a valid credential is still served from the throttled address, on either instance
        assert a.get("/v1/patients", headers=_auth(token)).status_code == 200
        assert b.get("/v1/patients", headers=_auth(token)).status_code == 200
    # what Redis holds: the counts under this run's redis_prefix, with an expiry (never forever)
    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(f"{redis_prefix}:*"))
        assert keys, "nothing was counted in Redis"
        assert all(0 < client.ttl(key) <= 60 for key in keys)
        assert not any(token.encode() in key for key in keys)  # ids, never the secret


def test_unreachable_redis_rate_limit_falls_back_to_this_process(
    database_url, redis_prefix, token, caplog, monkeypatch
):
    monkeypatch.setattr(limiter, "RETRY_AFTER_S", 60.0)  # one outage however slow the machine
    before = _unavailable("rate")
    with (
        caplog.at_level(logging.WARNING, logger="kap_outcomes.limits"),
        _app(
            database_url,
            redis_url=_closed_port_url(),
            redis_key_prefix=redis_prefix,
            rate_limit_per_minute=3,
        ) as app,
    ):
        codes = [app.get("/v1/patients", headers=_auth(token)).status_code for _ in range(5)]
    # served (not refused) while Redis is down, within this process's own count of 3
    assert codes == [200, 200, 200, 429, 429]
    assert _unavailable("rate") - before == 5
    warnings = [r.getMessage() for r in caplog.records if r.name == "kap_outcomes.limits"]
    assert len(warnings) == 1, warnings  # once per outage, not once per request
    assert "Redis did not answer" in warnings[0] and token not in warnings[0]


def test_unreachable_redis_failed_authentication_fails_closed(database_url, redis_prefix, token):
    before = _unavailable("failed_auth")
    with _app(
        database_url,
        redis_url=_closed_port_url(),
        redis_key_prefix=redis_prefix,
        failed_auth_per_minute=20,
    ) as app:
        refused = app.get("/v1/patients", headers=BAD)
        # uncountable, so refused from the first failure on (not the 401 it would be)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == str(limiter.CLOSED_RETRY_AFTER_S)
        assert refused.headers["content-type"] == "application/problem+json"
        # a valid credential is served all the same
        assert app.get("/v1/patients", headers=_auth(token)).status_code == 200
        assert app.get("/healthz").status_code == 200
    assert _unavailable("failed_auth") - before == 1


@pytest.fixture
def own_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own on a free port (never the machine's shared one)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_for(lambda: redis_answers(url), timeout=10, what="redis-server to answer")
        yield url, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(10)


def test_a_redis_that_dies_and_comes_back(
    database_url, own_redis, redis_prefix, token, monkeypatch, caplog
):
    url, proc = own_redis
    monkeypatch.setattr(limiter, "RETRY_AFTER_S", 0.5)
    settings = {
        "redis_url": url,
        "redis_key_prefix": redis_prefix,
        "rate_limit_per_minute": 2,
        "failed_auth_per_minute": 2,
    }
    caplog.set_level(logging.WARNING, logger="kap_outcomes.limits")
    with _app(database_url, **settings) as app:
        get = lambda headers: app.get("/v1/patients", headers=headers).status_code  # noqa: E731
        assert [get(_auth(token)) for _ in range(2)] == [200, 200]  # counted in Redis
        assert get(BAD) == 401
        proc.kill()
        proc.wait(10)
        # this process counts the rate from zero (fails open to itself); failures: refused
        assert [get(_auth(token)) for _ in range(3)] == [200, 200, 429]
        assert get(BAD) == 429
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        argv = [
            *proc.args[:1],
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        back = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: redis_answers(url), timeout=10, what="redis-server to come back")
            # after RETRY_AFTER_S the budgets use Redis again: a fresh (empty) store there
            wait_for(lambda: get(BAD) == 401, timeout=10, what="failures counted in Redis again")
            assert [get(BAD), get(BAD)] == [401, 429]  # 2 a minute, counted from the return
            said = [r.getMessage() for r in caplog.records if r.name == "kap_outcomes.limits"]
            # one warning for the outage however many retries it took, one for the return
            assert len(said) == 2 and "did not answer" in said[0] and "again" in said[1], said
        finally:
            back.kill()
            back.wait(10)
