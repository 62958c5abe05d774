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
