"""A real headless Chromium calls the real server cross-origin, as a clinic dashboard would
(issue #10): a page served from another port creates, reads the exposed headers, corrects and
files a FHIR form; a page of an origin not listed is refused by the browser itself. Then the
browser opens /docs and it renders with nothing loaded from outside 127.0.0.1.

Runs once (on SQLite: the database is not what it tests). The browser and the server are the
ones tests/test_browser_dashboard.py uses too (tests/browser_world.py: one launch, one start);
this module works in an organisation and a browser context of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from .browser_world import GROUP, PageServer, release, shared
from .conftest import PG_URL
from .fhir.forms import us_core_phq9
from .processes import http_get, issue_token

pytestmark = [
    pytest.mark.skipif(bool(PG_URL), reason="runs once, on SQLite"),
    # one xdist worker runs this module and the dashboard's: the browser and the server that
    # tests/browser_world.py starts for them are started once
    pytest.mark.xdist_group(GROUP),
]


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    shared_world = shared(request)
    stranger = PageServer()  # an origin KAP_CORS_ORIGINS does not list
    # the token straight into the database: `token create` is not what this module tests
    token = issue_token(shared_world.database_url, f"browser-{uuid.uuid4().hex[:8]}")
    requests: list[str] = []
    context = shared_world.browser.new_context()
    context.on("request", lambda request: requests.append(request.url))
    try:
        yield {
            "api": shared_world.service.base,
            "token": token,
            "context": context,
            "dashboard": shared_world.allowed,
            "stranger": stranger,
            "requests": requests,
            "service": shared_world.service,
        }
    finally:
        context.close()
        stranger.close()
        release(request)


def _nothing_left_loopback(world: dict[str, Any]) -> None:
    """Every request that could reach a network went to 127.0.0.1 (blob: and data: URLs are
    the page's own memory)."""
    outside = [
        url
        for url in world["requests"]
        if urlsplit(url).scheme not in ("blob", "data") and urlsplit(url).hostname != "127.0.0.1"
    ]
    assert not outside, f"the browser made requests outside 127.0.0.1: {outside}"


def _open(world: dict[str, Any], origin: str) -> Any:
    page = world["context"].new_page()
    page.goto(origin + "/")
    assert page.title() == "dashboard"
    return page


DASHBOARD_FLOW = """
async ({api, token, key, externalId, fhirTemplate}) => {
  const auth = {"Authorization": "Bearer " + token};
  const json = {...auth, "Content-Type": "application/json"};
  const headersOf = (resp, names) =>
    Object.fromEntries(names.map((name) => [name, resp.headers.get(name)]));
  const out = {};

  const patient = await fetch(api + "/v1/patients", {
    method: "POST", headers: json, body: JSON.stringify({external_id: externalId})});
  out.patient = {status: patient.status, body: await patient.json(),
                 ...headersOf(patient, ["Location"])};
  const pid = out.patient.body.id;

  const form = JSON.stringify({instrument: "phq9", items: [1, 2, 1, 0, 1, 2, 1, 0, 1],
                               administered_at: "2026-03-02T16:00:00Z"});
  const submit = () => fetch(api + "/v1/patients/" + pid + "/assessments", {
    method: "POST", body: form,
    headers: {...json, "Idempotency-Key": key, "X-Request-ID": "dash-req-0001"}});
  const names = ["Location", "ETag", "X-Request-ID", "Idempotent-Replayed"];
  const first = await submit();
  out.first = {status: first.status, body: await first.json(), ...headersOf(first, names)};
  const again = await submit();
  out.again = {status: again.status, body: await again.json(), ...headersOf(again, names)};

  const read = await fetch(api + out.first.Location, {headers: auth});
  out.read = {status: read.status, ...headersOf(read, ["ETag"])};

  const amend = await fetch(api + "/v1/assessments/" + out.first.body.id + "/amend", {
    method: "POST", headers: {...json, "If-Match": out.first.ETag},
    body: JSON.stringify({items: [1, 2, 1, 0, 1, 2, 1, 0, 0], reason: "patient misread item 9"})});
  out.amend = {status: amend.status, body: await amend.json(), ...headersOf(amend, ["ETag"])};
  const stale = await fetch(api + "/v1/assessments/" + out.first.body.id + "/amend", {
    method: "POST", headers: {...json, "If-Match": out.first.ETag},
    body: JSON.stringify({items: [0, 0, 0, 0, 0, 0, 0, 0, 0], reason: "second try"})});
  out.stale = {status: stale.status, type: stale.headers.get("Content-Type")};

  const fhirForm = JSON.stringify({...fhirTemplate, subject: {reference: "Patient/" + pid}});
  const fhir = () => fetch(api + "/fhir/R4/QuestionnaireResponse", {
    method: "POST", body: fhirForm,
    headers: {...auth, "Content-Type": "application/fhir+json",
              "Prefer": "return=representation",
              "If-None-Exist": "identifier=urn:dashboard:forms|" + key}});
  const created = await fhir();
  out.fhir = {status: created.status, body: await created.json(),
              ...headersOf(created, ["Location", "ETag", "X-Request-ID"])};
  const matched = await fhir();
  out.fhirAgain = {status: matched.status, body: await matched.json()};
  return out;
}
"""


def test_a_dashboard_on_another_origin_uses_the_api(world):
    page = _open(world, world["dashboard"].origin)
    key = str(uuid.uuid4())
    form = us_core_phq9("placeholder", [1, 1, 0, 0, 1, 0, 0, 0, 0])
    form["identifier"] = {"system": "urn:dashboard:forms", "value": key}
    out = page.evaluate(
        DASHBOARD_FLOW,
        {
            "api": world["api"],
            "token": world["token"],
            "key": key,
            "externalId": f"dash-{key}",
            "fhirTemplate": form,
        },
    )
    page.close()

    assert out["patient"]["status"] == 201
    assert out["patient"]["Location"] == f"/v1/patients/{out['patient']['body']['id']}"

    first, again = out["first"], out["again"]
    assert first["status"] == 201
    assert first["body"]["total"] == 9 and len(first["body"]["alerts"]) == 1  # item 9 = 1
    assert first["Location"] == f"/v1/assessments/{first['body']['id']}"
    assert first["ETag"] == '"1"'
    assert first["X-Request-ID"] == "dash-req-0001"  # sent by the page, echoed, readable
    assert first["Idempotent-Replayed"] is None
    assert again["status"] == 201 and again["Idempotent-Replayed"] == "true"
    assert again["body"]["id"] == first["body"]["id"] and again["Location"] == first["Location"]
    assert out["read"] == {"status": 200, "ETag": first["ETag"]}

    assert out["amend"]["status"] == 200, out["amend"]
    assert out["amend"]["body"]["version"] == 2 and out["amend"]["ETag"] == '"2"'
    assert out["stale"] == {"status": 412, "type": "application/problem+json"}

    fhir = out["fhir"]
    assert fhir["status"] == 201, fhir
    assert fhir["body"]["resourceType"] == "QuestionnaireResponse"
    assert fhir["Location"].endswith(f"/QuestionnaireResponse/{fhir['body']['id']}/_history/1")
    assert fhir["ETag"] == 'W/"1"' and fhir["X-Request-ID"]
    assert out["fhirAgain"]["status"] == 200  # If-None-Exist matched the stored form
    assert out["fhirAgain"]["body"]["id"] == fhir["body"]["id"]
    _nothing_left_loopback(world)


STRANGER_FLOW = """
async ({api, token, externalId}) => {
  const attempt = async (url, init) => {
    try { const resp = await fetch(url, init); return "answered " + resp.status; }
    catch (error) { return "refused: " + error.name; }
  };
  return {
    simple: await attempt(api + "/healthz", {}),
    create: await attempt(api + "/v1/patients", {
      method: "POST", body: JSON.stringify({external_id: externalId}),
      headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"}}),
  };
}
"""


def test_a_page_of_an_origin_not_listed_is_refused_by_the_browser(world):
    page = _open(world, world["stranger"].origin)
    external_id = f"stranger-{uuid.uuid4()}"
    out = page.evaluate(
        STRANGER_FLOW,
        {"api": world["api"], "token": world["token"], "externalId": external_id},
    )
    page.close()
    assert out == {"simple": "refused: TypeError", "create": "refused: TypeError"}
    # the preflight failed, so the POST was never sent: nothing was created
    found = http_get(
        f"{world['api']}/v1/patients",
        params={"external_id": external_id},
        headers={"Authorization": f"Bearer {world['token']}"},
    )
    assert found.status_code == 200 and found.json()["data"] == []
    _nothing_left_loopback(world)


def test_the_interactive_docs_render_offline(world):
    page = world["context"].new_page()
    page.goto(world["api"] + "/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    operations = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/v1/patients/{patient_id}/assessments" in text for text in operations)
    assert len(operations) >= 30
    page.close()
    loaded = [urlsplit(url) for url in world["requests"]]
    assert any(url.path == "/docs/assets/swagger-ui-bundle.js" for url in loaded)
    assert any(url.path == "/openapi.json" for url in loaded)
    _nothing_left_loopback(world)
