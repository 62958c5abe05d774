"""The clinician dashboard in a real headless Chromium against a real server (issue #12).

A demo clinic is seeded with ``kap-outcomes demo`` into the server's database; the browser
opens the sign-in link it printed, sees the caseload in the API's order, opens a patient by
keyboard and finds one chart point per valid score and one marker per dose session (numbers
checked against the API's trend and sessions, not against the chart code), acknowledges an
alert and sees it leave the open list, sees a new alert arrive live from the event feed, has
a write without the CSRF token refused, and signs out. axe-core (from npm, tests/browser)
finds no serious or critical violation on any page, and no request leaves 127.0.0.1.

With ``KAP_SCREENSHOTS=<dir>`` the test also writes the screenshots that docs/ shows.
Runs once (on SQLite), like tests/test_browser_cors.py, whose browser and server it shares
(tests/browser_world.py: one launch, one start); the clinic is an organisation of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, text

from kap_outcomes.auth.models import Role
from kap_outcomes.dashboard.sessions import create_signin_code
from kap_outcomes.db import Database, make_engine

from .browser_world import GROUP, release, shared
from .conftest import PG_URL, ROOT
from .processes import http_client, issue_token, wait_for
from .toolcache import npm_modules

pytestmark = [
    pytest.mark.skipif(bool(PG_URL), reason="runs once, on SQLite"),
    # one xdist worker runs this module and the CORS one: the browser and the server that
    # tests/browser_world.py starts for them are started once
    pytest.mark.xdist_group(GROUP),
]

AXE_PACKAGE = ROOT / "tests" / "browser"
LEVEL_RANK = {"emergency": 0, "urgent": 1, "review": 2}


def _axe_script() -> Path:
    """axe.min.js installed by ``npm ci`` from tests/browser's lock file, once per lock file
    (tests/toolcache.py); skipped locally without npm, CI must have it."""
    if shutil.which("npm") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("npm not found: CI must have it")
        pytest.skip("npm not found (axe-core comes from npm)")
    return npm_modules("axe", AXE_PACKAGE) / "axe-core" / "axe.min.js"


def _cli(*args: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "kap_outcomes.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    shared_world = shared(request)
    axe = _axe_script()
    url, base = shared_world.database_url, shared_world.service.base
    org = f"demo-{uuid.uuid4().hex[:8]}"
    link = _cli(
        "demo", "--org", org, "--seed", "12", env=shared_world.env, cwd=shared_world.workdir
    )
    # the accessibility pass's own sign-in, made as `signin-link` makes it (that command is
    # tested in tests/api/test_demo.py; here it would only cost a process)
    db = Database(make_engine(url))
    code = db.run_write(
        lambda conn: create_signin_code(
            conn, organisation_slug=org, role=Role.clinician, ttl=timedelta(minutes=10)
        )
    )
    db.dispose()
    axe_link = f"{base}/signin?code={code}"
    api_token = issue_token(url, org)
    requests: list[str] = []
    context = shared_world.browser.new_context(viewport={"width": 1280, "height": 900})
    context.on("request", lambda request: requests.append(request.url))
    # axe.min.js is injected as an inline script, which the dashboard's CSP forbids
    # (rightly): the accessibility pass runs in a context of its own that bypasses it
    axe_context = shared_world.browser.new_context(bypass_csp=True)
    axe_context.on("request", lambda request: requests.append(request.url))
    api = http_client(base_url=base, headers={"Authorization": f"Bearer {api_token}"})
    try:
        yield {
            "base": base,
            "database_url": url,
            "link": link,
            "axe_link": axe_link,
            "axe": axe,
            "api": api,
            "context": context,
            "axe_context": axe_context,
            "requests": requests,
            "shots": os.environ.get("KAP_SCREENSHOTS"),
        }
    finally:
        api.close()
        context.close()
        axe_context.close()
        release(request)


def _nothing_left_loopback(world: dict[str, Any]) -> None:
    outside = [
        url
        for url in world["requests"]
        if urlsplit(url).scheme not in ("blob", "data") and urlsplit(url).hostname != "127.0.0.1"
    ]
    assert world["requests"] and not outside, f"requests outside 127.0.0.1: {outside}"


def _shot(world: dict[str, Any], page: Any, name: str) -> None:
    if world["shots"]:
        Path(world["shots"]).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(world["shots"]) / name), full_page=name != "caseload.png")


def _rows(page: Any, selector: str, attribute: str) -> list[str]:
    """One attribute of every element matched, read at one instant."""
    return list(
        page.locator(selector).evaluate_all(f"els => els.map(e => e.getAttribute('{attribute}'))")
    )


CHECKPOINT = text("SELECT tx, seq FROM event_consumers WHERE name = 'signals'")
BEHIND = text(
    """SELECT count(*) FROM events WHERE type <> 'signal.changed'
       AND (tx > :tx OR (tx = :tx AND seq > :seq))"""
)
"""Events the signal watch has not read yet, but for its own ``signal.changed``: it writes
those in the transaction that moves its checkpoint past what it read, and nothing else in the
service writes an event unasked (the other events come from requests and commands)."""


def _quiet(database_url: str) -> None:
    """Until the event worker's signal watch has read every event of the seeding, and written
    the ``signal.changed`` events that come of them: from then on the organisation's feed
    holds still until the test itself writes (a page would otherwise refresh itself under
    the test as they arrive)."""
    engine = create_engine(database_url)
    try:

        def caught_up() -> bool:
            with engine.connect() as conn:
                tx, seq = conn.execute(CHECKPOINT).one()  # the migrations made the row
                return conn.execute(BEHIND, {"tx": tx, "seq": seq}).scalar_one() == 0

        wait_for(caught_up, timeout=60, what="the signal watch to catch up", step=0.1)
    finally:
        engine.dispose()


def test_the_clinicians_way_through_the_dashboard(world):
    api = world["api"]
    _quiet(world["database_url"])
    page = world["context"].new_page()

    # sign in with the link the demo printed: the code leaves the address bar at once
    page.goto(world["link"])
    assert urlsplit(page.url).path == "/" and "code=" not in page.url
    assert page.title() == "Caseload · kap-outcomes"

    # the caseload in the API's order (open alerts by level, consider_booster, watch, rest)
    expected = api.get("/v1/caseload", params={"limit": 25}).json()["data"]
    shown = _rows(page, "table.caseload tbody tr", "data-patient-id")
    assert shown == [row["patient_id"] for row in expected]
    assert _rows(page, "table.caseload tbody tr", "data-alert-level")[0] == "emergency"
    _shot(world, page, "caseload.png")

    # open a patient with a dosing course, from the keyboard
    target = next(row for row in expected if row["booster_status"] == "consider_booster")
    page.locator(f'a[href="/patients/{target["patient_id"]}"]').focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/patients/{target['patient_id']}")
    trend = api.get(
        f"/v1/patients/{target['patient_id']}/trends", params={"instrument": "phq9"}
    ).json()
    sessions = api.get(
        f"/v1/patients/{target['patient_id']}/sessions", params={"limit": 500}
    ).json()["data"]
    chart = page.locator('svg.kap-chart[data-instrument="phq9"]')
    totals = [int(t) for t in _rows(chart, "circle.score-point", "data-total")]
    assert totals == [p["total"] for p in trend["points"]] and len(totals) >= 4
    doses = [s for s in sessions if s["kind"] in ("dosing", "booster")]
    assert chart.locator("line.dose-marker").count() == len(doses) >= 6
    slope = float(chart.locator("line.trend-line").get_attribute("data-slope-per-week"))
    assert slope == trend["trend"]["slope_per_week"]
    assert chart.locator("title").first.text_content() == "PHQ-9 over time"
    table = page.locator('table.scores[data-instrument="phq9"] tbody tr')
    assert table.count() == len(trend["points"])
    assert page.locator(".badge.status-consider_booster").count() == 1
    _shot(world, page, "patient.png")

    # the alerts inbox: open alerts, most severe first, newest first within a level
    page.locator('nav a[href="/alerts"]').click()
    page.wait_for_url("**/alerts")
    open_alerts = api.get("/v1/alerts", params={"status": "open", "limit": 500}).json()["data"]
    newest_first = sorted(open_alerts, key=lambda a: a["created_at"], reverse=True)
    by_hand = sorted(newest_first, key=lambda a: LEVEL_RANK[a["level"]])  # a stable sort
    assert _rows(page, "#open-alerts tbody tr", "data-alert-id") == [a["id"] for a in by_hand]

    # acknowledge the first, with a note, from the keyboard: it leaves the open list
    first = by_hand[0]["id"]
    page.locator(f"#ack-note-{first}").focus()
    page.keyboard.type("called the patient")
    with page.expect_navigation():
        page.keyboard.press("Enter")  # submits the form; back to the inbox after a 303
    assert urlsplit(page.url).path == "/alerts", page.content()[-3000:]
    assert first not in _rows(page, "#open-alerts tbody tr", "data-alert-id")
    assert first in _rows(page, "#acknowledged-alerts tbody tr", "data-alert-id")
    stored = api.get("/v1/alerts", params={"status": "acknowledged", "limit": 500}).json()
    mine = next(a for a in stored["data"] if a["id"] == first)
    assert mine["acknowledged_note"] == "called the patient"

    # live: an alert opened elsewhere appears without a reload (the event feed, SSE)
    quiet = next(row for row in expected if row["alert_level"] == "none")
    made = api.post(
        f"/v1/patients/{quiet['patient_id']}/assessments",
        json={"instrument": "phq9", "items": [1, 1, 1, 1, 1, 1, 1, 1, 2]},
    )
    assert made.status_code == 422  # administered_at is required: nothing stored
    made = api.post(
        f"/v1/patients/{quiet['patient_id']}/assessments",
        json={
            "instrument": "phq9",
            "items": [1, 1, 1, 1, 1, 1, 1, 1, 2],
            "administered_at": "2026-01-05T10:00:00Z",
        },
    )
    assert made.status_code == 201, made.text
    (new_alert,) = made.json()["alerts"]
    page.locator(f'#open-alerts tr[data-alert-id="{new_alert["id"]}"]').wait_for(timeout=15_000)
    assert "A new alert" in page.locator("#live-status").inner_text()

    # a write without the CSRF token, from the page itself: refused, nothing changed
    refused = page.evaluate(
        """async (id) => (await fetch("/alerts/" + id + "/resolve", {method: "POST",
             headers: {"Content-Type": "application/x-www-form-urlencoded"},
             body: "note=x", redirect: "manual"})).status""",
        new_alert["id"],
    )
    assert refused == 403
    still = api.get("/v1/alerts", params={"status": "open", "limit": 500}).json()["data"]
    assert new_alert["id"] in [a["id"] for a in still]

    # sign out: back to the sign-in page, and the caseload is closed
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/signin")
    page.goto(world["base"] + "/")
    assert urlsplit(page.url).path == "/signin"
    page.close()
    _nothing_left_loopback(world)


def _axe(page: Any, axe: Path) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(axe))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_no_serious_accessibility_violation(world):
    page = world["axe_context"].new_page()
    page.goto(world["base"] + "/signin")
    pages = {"signin": _axe(page, world["axe"])}
    page.goto(world["axe_link"])
    pages["caseload"] = _axe(page, world["axe"])
    patient = page.locator("table.caseload tbody tr th a").first.get_attribute("href")
    page.goto(world["base"] + patient)
    page.locator("details summary").first.click()  # the data table, opened
    pages["patient"] = _axe(page, world["axe"])
    page.goto(world["base"] + "/alerts")
    pages["alerts"] = _axe(page, world["axe"])
    page.close()
    assert pages == {"signin": [], "caseload": [], "patient": [], "alerts": []}
    _nothing_left_loopback(world)
