"""/v1 lists never widen (issue #9, rule 6 where it applies on /v1): a query parameter the
route does not know, or one given twice, is a 422 problem naming it, not a silently larger
or different answer."""

from __future__ import annotations

import uuid
from typing import Any

import pytest


def problem(resp: Any) -> list[str | None]:
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    return [e.get("parameter") for e in resp.json()["errors"]]


def test_a_misspelt_filter_is_refused_not_ignored(tenant: Any) -> None:
    a, b = f"ext-{uuid.uuid4().hex[:8]}", f"ext-{uuid.uuid4().hex[:8]}"
    tenant.patient(a)
    tenant.patient(b)
    found = tenant.get("/v1/patients", params={"external_id": a})
    assert [p["external_id"] for p in found.json()["data"]] == [a]
    # "externalId" is not a filter of this list: answering with every patient would widen it.
    assert problem(tenant.get("/v1/patients", params={"externalId": a})) == ["externalId"]
    assert problem(tenant.get("/v1/alerts", params={"patient": str(uuid.uuid4())})) == ["patient"]


def test_a_repeated_filter_is_refused_not_last_wins(tenant: Any) -> None:
    a, b = f"ext-{uuid.uuid4().hex[:8]}", f"ext-{uuid.uuid4().hex[:8]}"
    tenant.patient(a)
    tenant.patient(b)
    resp = tenant.get("/v1/patients", params=[("external_id", a), ("external_id", b)])
    assert problem(resp) == ["external_id"]


@pytest.mark.parametrize("path", ["/v1/patients", "/v1/alerts", "/v1/caseload"])
def test_declared_parameters_still_work(tenant: Any, path: str) -> None:
    resp = tenant.get(path, params={"limit": 5})
    assert resp.status_code == 200, resp.text


def test_the_ingest_route_refuses_a_query_parameter_and_stores_nothing(
    tenant: Any, count_rows: Any
) -> None:
    """The busiest route has no FastAPI dependency at all; the rule still holds there."""
    patient = tenant.patient()
    body = {
        "instrument": "phq9",
        "items": [1, 1, 1, 1, 1, 1, 1, 1, 0],
        "administered_at": "2026-03-02T15:04:05Z",
    }
    path = f"/v1/patients/{patient}/assessments"
    assert problem(tenant.post(path, body, params={"dry_run": "1"})) == ["dry_run"]
    assert count_rows("assessments", tenant.org_id) == 0
    # before authentication, as an app-wide rule: no token, still the 422 naming it
    resp = tenant.client.post(path, json=body, params={"x": "1"})
    assert problem(resp) == ["x"]
    created = tenant.post(path, body)
    assert created.status_code == 201, created.text


def test_every_v1_route_carries_the_rule() -> None:
    from kap_outcomes.app import create_app
    from kap_outcomes.config import Settings
    from kap_outcomes.contract import api_routes
    from kap_outcomes.query_rules import DeclaredQueryRoute

    app = create_app(Settings(database_url="sqlite://", environment="development"))
    v1 = [r for r in api_routes(app.router.routes) if r.path.startswith("/v1/")]
    assert len(v1) > 40
    assert [r.path for r in v1 if not isinstance(r, DeclaredQueryRoute)] == []
