"""The clinician dashboard in a real headless Chromium against a real server (issue #12).

A demo clinic is seeded with ``kap-outcomes demo`` into the server's database; the browser
opens the sign-in link it printed, sees the caseload in the API's order, opens a patient by
keyboard and finds one chart point per valid score and one marker per dose session (numbers
checked against the API's trend and sessions, not against the chart code), acknowledges an
alert and sees it leave the open list, sees a new alert arrive live from the event feed, has
a write without the CSRF token refused, and signs out. axe-core (from npm, tests/browser)
finds no serious or critical violation on any page, and no request leaves 127.0.0.1.

With ``KAP_SCREENSHOTS=<dir>`` the test also writes the screenshots that docs/ shows.
Runs once (on SQLite), like tests/test_browser_cors.py, whose launch it shares.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import ensure_organisation, issue_token
from kap_outcomes.db import Database, make_engine
from kap_outcomes.migrate import upgrade

from .conftest import PG_URL, ROOT
from .processes import ServiceProcess, service_env
from .test_browser_cors import CHROMIUM, LAUNCH_ARGS, _need_browser
from .toolcache import cached

pytestmark = [
    pytest.mark.skipif(bool(PG_URL), reason="runs once, on SQLite"),
    # one xdist worker runs the module: its module fixture starts the processes once
    pytest.mark.xdist_group("test_browser_dashboard"),
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
    lock = [AXE_PACKAGE / "package.json", AXE_PACKAGE / "package-lock.json"]

    def install(work: Path) -> None:
        for path in lock:
            shutil.copy(path, work / path.name)
        done = subprocess.run(
            ["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    return cached("axe", lock, "", install) / "node_modules" / "axe-core" / "axe.min.js"


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
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    sync_api = _need_browser()
    workdir = tmp_path_factory.mktemp("dashboard-browser")
    axe = _axe_script()
    url = f"sqlite:///{workdir / 'kap.db'}"
    upgrade(url)
    service = ServiceProcess(service_env(url), workdir)
    env = service_env(url) | {"KAP_PUBLIC_BASE_URL": service.base}
    link = _cli("demo", "--org", "demo", "--seed", "12", env=env, cwd=workdir)
    axe_link = _cli("signin-link", "--org", "demo", "--role", "clinician", env=env, cwd=workdir)
    db = Database(make_engine(url))

    def token(conn: Any) -> str:
        return issue_token(
            conn, organisation_id=ensure_organisation(conn, "demo"), role=Role.clinician
        )[1]

    api_token = db.run_write(token)
    db.dispose()
    requests: list[str] = []
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
            )
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.on("request", lambda request: requests.append(request.url))
            # axe.min.js is injected as an inline script, which the dashboard's CSP forbids
            # (rightly): the accessibility pass runs in a context of its own that bypasses it
            axe_context = browser.new_context(bypass_csp=True)
            axe_context.on("request", lambda request: requests.append(request.url))
            yield {
                "base": service.base,
                "link": link,
                "axe_link": axe_link,
                "axe": axe,
                "api": httpx.Client(
                    base_url=service.base, headers={"Authorization": f"Bearer {api_token}"}
                ),
                "context": context,
                "axe_context": axe_context,
                "requests": requests,
                "shots": os.environ.get("KAP_SCREENSHOTS"),
            }
            context.close()
            axe_context.close()
            browser.close()
    finally:
        service.stop()


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


def _quiet(api: httpx.Client) -> None:
    """Until the event worker has caught up with the seeding (its signal watch emits events
    of its own): no new event for two seconds."""
    cursor = None
    for _ in range(60):
        params: dict[str, Any] = {"wait": 2, "limit": 500}
        if cursor:
            params["after"] = cursor
        page = api.get("/v1/events", params=params, timeout=10).json()
        if cursor and not page["data"]:
            return
        cursor = page["next_cursor"]
    pytest.fail("the event feed never went quiet")


def test_the_clinicians_way_through_the_dashboard(world):
    api = world["api"]
    _quiet(api)
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
