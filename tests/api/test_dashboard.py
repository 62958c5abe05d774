"""The dashboard over HTTP (TestClient): sign-in, the session cookie, CSRF, role rules,
organisations kept apart, the audit, and the pages showing what the API says.

The browser itself (rendering, keyboard, axe-core, no outside request) is
tests/test_browser_dashboard.py.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from kap_outcomes.auth.models import Role
from kap_outcomes.dashboard.sessions import COOKIE_NAME, create_signin_code

from .course import Clinic, _day
from .test_caseload import _statements


def _browser(client: TestClient) -> TestClient:
    """A browser of its own (its own cookie jar) on the suite's app."""
    return TestClient(client.app, follow_redirects=False)


def _code(tenant, role: Role = Role.clinician, ttl: timedelta = timedelta(minutes=10)) -> str:
    return tenant.db.run_write(
        lambda conn: create_signin_code(conn, organisation_slug=tenant.slug, role=role, ttl=ttl)
    )


def _signed_in(tenant, role: Role = Role.clinician) -> TestClient:
    browser = _browser(tenant.client)
    resp = browser.get("/signin", params={"code": _code(tenant, role)})
    assert resp.status_code == 303 and resp.headers["location"] == "/"
    return browser


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def _open_alert(tenant) -> tuple[str, str]:
    """A patient whose PHQ-9 item 9 = 2 opened an urgent alert."""
    clinic = Clinic(tenant)
    created = clinic.phq9(1, 12, item9=2)
    (alert,) = created["alerts"]
    return clinic.pid, alert["id"]


def test_a_signin_link_opens_a_session_once(tenant):
    browser = _browser(tenant.client)
    assert browser.get("/").headers["location"] == "/signin"  # not signed in
    code = _code(tenant)
    resp = browser.get("/signin", params={"code": code})
    assert resp.status_code == 303 and resp.headers["location"] == "/"  # the code leaves the URL
    cookie = resp.headers["set-cookie"]
    assert f"{COOKIE_NAME}=" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Max-Age=43200" in cookie and "Path=/" in cookie  # 12 hours by default
    assert code not in cookie
    page = browser.get("/")
    assert page.status_code == 200 and "<h1>Caseload</h1>" in page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["content-security-policy"].count("default-src") == 1
    # the same link again, from another browser: refused
    again = _browser(tenant.client).get("/signin", params={"code": code})
    assert again.status_code == 401 and COOKIE_NAME not in again.headers.get("set-cookie", "")


def test_an_expired_link_or_a_wrong_code_is_refused(tenant):
    expired = _code(tenant, ttl=timedelta(seconds=-1))
    for code in (expired, "not-a-code", "x" * 200):
        resp = _browser(tenant.client).get("/signin", params={"code": code})
        assert resp.status_code == 401
        assert "not valid" in resp.text


def test_codes_are_stored_only_as_hashes(tenant, db):
    code = _code(tenant)
    browser = _browser(tenant.client)
    browser.get("/signin", params={"code": code})
    secret = browser.cookies.get(COOKIE_NAME)
    dump = db.run_read(
        lambda conn: (
            str(conn.execute(text("SELECT * FROM dashboard_signin_codes")).all())
            + str(conn.execute(text("SELECT * FROM dashboard_sessions")).all())
        )
    )
    assert code not in dump and secret not in dump


@pytest.mark.parametrize(
    ("role", "allowed"),
    [(Role.clinician, True), (Role.admin, True), (Role.integration, False)],
)
def test_staff_tokens_sign_in_by_role(tenant, role, allowed):
    browser = _browser(tenant.client)
    resp = browser.post("/signin", data={"token": tenant.tokens[role]})
    assert resp.status_code == (303 if allowed else 401)
    assert (browser.get("/").status_code == 200) is allowed


def test_a_patient_token_cannot_open_the_dashboard(tenant):
    pid = tenant.patient()
    token = tenant.patient_token(pid)["Authorization"].split()[1]
    browser = _browser(tenant.client)
    resp = browser.post("/signin", data={"token": token})
    assert resp.status_code == 401
    assert browser.get(f"/patients/{pid}").status_code == 303  # to the sign-in page
    # nor does a bearer header on a page: the dashboard knows only its session cookie
    direct = browser.get(f"/patients/{pid}", headers=tenant.patient_token(pid))
    assert direct.status_code == 303


def test_signing_out_ends_the_session(tenant):
    browser = _signed_in(tenant)
    secret = browser.cookies.get(COOKIE_NAME)
    page = browser.get("/").text
    resp = browser.post("/signout", data={"csrf": _csrf(page)})
    assert resp.status_code == 303 and resp.headers["location"] == "/signin"
    # the old cookie, replayed by someone who kept it, opens nothing
    replay = _browser(tenant.client)
    replay.cookies.set(COOKIE_NAME, secret)
    assert replay.get("/").status_code == 303


def test_revoking_the_token_ends_its_sessions(tenant):
    clinician = tenant.client.post(
        "/v1/tokens", json={"role": "clinician"}, headers=tenant.headers(Role.admin)
    ).json()
    browser = _browser(tenant.client)
    assert browser.post("/signin", data={"token": clinician["token"]}).status_code == 303
    assert browser.get("/").status_code == 200
    tenant.client.delete(f"/v1/tokens/{clinician['id']}", headers=tenant.headers(Role.admin))
    assert browser.get("/").status_code == 303


def test_an_expired_session_opens_nothing(tenant, db):
    browser = _signed_in(tenant)
    db.run_write(
        lambda conn: conn.execute(
            text(
                "UPDATE dashboard_sessions SET expires_at = created_at WHERE organisation_id = :o"
            ),
            {"o": tenant.org_id},
        )
    )
    assert browser.get("/").status_code == 303


def test_writes_need_the_csrf_token(tenant):
    pid, alert_id = _open_alert(tenant)
    browser = _signed_in(tenant)
    page = browser.get(f"/patients/{pid}").text
    token = _csrf(page)
    for data in ({"note": "seen"}, {"note": "seen", "csrf": "0" * 64}):
        resp = browser.post(f"/alerts/{alert_id}/acknowledge", data=data)
        assert resp.status_code == 403
    # another site's form, even with a token: refused on its Origin
    resp = browser.post(
        f"/alerts/{alert_id}/acknowledge",
        data={"csrf": token},
        headers={"Origin": "http://evil.example"},
    )
    assert resp.status_code == 403
    alert = tenant.get("/v1/alerts", params={"patient_id": pid}).json()["data"][0]
    assert alert["status"] == "open"  # nothing changed
    # a CSRF token of another session does not fit this one
    other = _signed_in(tenant)
    other_token = _csrf(other.get("/").text)
    assert other_token != token
    resp = browser.post(f"/alerts/{alert_id}/acknowledge", data={"csrf": other_token})
    assert resp.status_code == 403
    # sign-out too is a write
    assert browser.post("/signout", data={}).status_code == 403
    assert browser.get("/").status_code == 200


def test_acknowledge_and_resolve_with_notes(tenant):
    pid, alert_id = _open_alert(tenant)
    browser = _signed_in(tenant)
    token = _csrf(browser.get("/alerts").text)
    resp = browser.post(
        f"/alerts/{alert_id}/acknowledge",
        data={"csrf": token, "note": "called the patient", "next": "/alerts"},
    )
    assert resp.status_code == 303 and resp.headers["location"] == "/alerts"
    alert = tenant.get("/v1/alerts", params={"patient_id": pid}).json()["data"][0]
    assert alert["status"] == "acknowledged" and alert["acknowledged_note"] == "called the patient"
    resp = browser.post(
        f"/alerts/{alert_id}/resolve",
        data={"csrf": token, "note": "safety plan in place", "next": "https://evil.example/"},
    )
    assert resp.headers["location"] == "/"  # never back to another site
    alert = tenant.get("/v1/alerts", params={"patient_id": pid}).json()["data"][0]
    assert alert["status"] == "resolved" and alert["resolved_note"] == "safety plan in place"
    # the audit names the session's actor and the patient, as the API's would
    events = tenant.get("/v1/audit-events", role=Role.admin, params={"patient_id": pid}).json()
    actions = [e["action"] for e in events["data"]]
    assert "POST /alerts/{alert_id}/acknowledge" in actions
    assert "POST /alerts/{alert_id}/resolve" in actions
    assert "GET /alerts" not in actions  # the inbox is about no one patient


def test_another_organisations_records_are_not_found(tenant, make_tenant):
    pid, alert_id = _open_alert(tenant)
    stranger = _signed_in(make_tenant())
    assert stranger.get(f"/patients/{pid}").status_code == 404
    token = _csrf(stranger.get("/").text)
    resp = stranger.post(f"/alerts/{alert_id}/acknowledge", data={"csrf": token})
    assert resp.status_code == 404
    assert alert_id not in stranger.get("/alerts").text
    alert = tenant.get("/v1/alerts", params={"patient_id": pid}).json()["data"][0]
    assert alert["status"] == "open"


def test_the_patient_page_shows_the_apis_numbers(tenant):
    clinic = Clinic(tenant)
    clinic.phq9(0, 22)
    for day in (1, 3, 5, 8, 10, 12):
        clinic.dose(day)
    clinic.phq9(13, 6)
    clinic.phq9(20, 7)
    clinic.phq9(27, 11)
    clinic.gad7(27, 9)
    browser = _signed_in(tenant)
    page = browser.get(f"/patients/{clinic.pid}")
    assert page.status_code == 200
    signals = clinic.signals()
    assert signals["booster"]["status"] == "watch"
    assert 'class="badge status-watch"' in page.text
    for reason in signals["booster"]["reasons"]:
        assert reason["detail"] in page.text  # the reasons in sentences
    trend = clinic.trend()
    totals = re.findall(r'class="score-point" data-total="(\d+)"', page.text)
    gad7_points = clinic.trend("gad7")["points"]
    assert [int(t) for t in totals] == [p["total"] for p in trend["points"]] + [
        p["total"] for p in gad7_points
    ]
    assert page.text.count('class="dose-marker"') == 2 * 6  # on both charts
    # audited as a read of that patient
    events = tenant.get(
        "/v1/audit-events", role=Role.admin, params={"patient_id": clinic.pid}
    ).json()
    assert "GET /patients/{patient_id}" in [e["action"] for e in events["data"]]


def test_the_caseload_is_in_the_apis_order(tenant):
    calm, relapsing = Clinic(tenant), Clinic(tenant)
    for clinic in (calm, relapsing):
        clinic.phq9(0, 22)
        for day in (1, 3, 5, 8, 10, 12):
            clinic.dose(day)
        clinic.phq9(13, 6)
    relapsing.phq9(20, 13)
    relapsing.phq9(26, 14)
    _open_alert(tenant)
    api = [row["patient_id"] for row in tenant.get("/v1/caseload").json()["data"]]
    page = _signed_in(tenant).get("/").text
    shown = re.findall(r'<tr data-patient-id="([^"]+)"', page)
    assert shown == api and len(shown) == 3
    assert api[1] == relapsing.pid  # consider_booster after the alert


def test_caseload_filters_and_paging(tenant):
    for _ in range(3):
        tenant.patient()
    _open_alert(tenant)
    browser = _signed_in(tenant)
    first = browser.get("/", params={"limit": 2}).text
    rows = re.findall(r'<tr data-patient-id="([^"]+)"', first)
    assert len(rows) == 2
    next_url = re.search(r'<a href="([^"]+)" rel="next">', first).group(1).replace("&amp;", "&")
    rest = re.findall(r'<tr data-patient-id="([^"]+)"', browser.get(next_url).text)
    assert len(rest) == 2 and not set(rest) & set(rows)
    alerted = browser.get("/", params={"alert": "open"}).text
    assert len(re.findall(r"<tr data-patient-id=", alerted)) == 1
    assert browser.get("/", params={"cursor": "junk"}).status_code == 400


def test_a_stale_form_after_a_colleague_acted_shows_the_list(tenant):
    _, alert_id = _open_alert(tenant)
    browser = _signed_in(tenant)
    token = _csrf(browser.get("/alerts").text)
    tenant.post(f"/v1/alerts/{alert_id}/acknowledge", {})
    resp = browser.post(f"/alerts/{alert_id}/acknowledge", data={"csrf": token, "next": "/alerts"})
    assert resp.status_code == 303  # 409 underneath: back to the list as it now stands


def test_signin_form_from_another_site_is_refused(tenant):
    resp = _browser(tenant.client).post(
        "/signin",
        data={"token": tenant.tokens[Role.clinician]},
        headers={"Origin": "http://evil.example"},
    )
    assert resp.status_code == 403


def test_dashboard_routes_are_not_in_the_api_document(client):
    paths: dict[str, Any] = client.get("/openapi.json").json()["paths"]
    assert "/v1/patients/{patient_id}/charts/{instrument}.svg" in paths
    for page in ("/", "/signin", "/signout", "/alerts", "/live", "/patients/{patient_id}"):
        assert page not in paths
    assert not [p for p in paths if p.startswith(("/alerts/", "/assets"))]


def test_a_total_only_score_from_an_ehr_shows_like_any_other(tenant):
    """A PHQ-9 sent as a total alone (an EHR flowsheet) is drawn and listed beside forms, and
    its unknown item 9 shows as the open review alert it raised."""
    clinic = Clinic(tenant)
    clinic.phq9(0, 20)
    sent = tenant.post(
        f"/v1/patients/{clinic.pid}/assessments",
        {"instrument": "phq9", "total": 14, "items": None, "administered_at": _day(7)},
    )
    assert sent.status_code == 201, sent.text
    assert [a["kind"] for a in sent.json()["alerts"]] == ["safety_item_missing"]
    page = _signed_in(tenant).get(f"/patients/{clinic.pid}")
    assert page.status_code == 200, page.text
    totals = re.findall(r'class="score-point" data-total="(\d+)"', page.text)
    assert [int(t) for t in totals] == [20, 14]
    svg = tenant.get(f"/v1/patients/{clinic.pid}/charts/phq9.svg")
    assert svg.status_code == 200 and svg.text.count('class="score-point"') == 2


def test_the_patient_page_shows_every_version_of_a_corrected_assessment(tenant):
    """An amended form lists its versions (what each said, when, and the reason), as
    ``GET /v1/assessments/{id}/history`` does; a form never corrected shows its one version."""
    clinic = Clinic(tenant)
    kept = clinic.phq9(0, 9)
    first = clinic.phq9(7, 14)
    amended = tenant.client.post(
        f"/v1/assessments/{first['id']}/amend",
        json={"items": [3, 3, 2, 0, 0, 0, 0, 0, 0], "reason": "item 3 keyed on the wrong row"},
        headers=tenant.headers() | {"If-Match": '"1"'},
    )
    assert amended.status_code == 200, amended.text
    history = tenant.get(f"/v1/assessments/{first['id']}/history").json()["versions"]
    assert [(v["version"], v["total"]) for v in history] == [(1, 14), (2, 8)]
    page = _signed_in(tenant).get(f"/patients/{clinic.pid}").text
    row = page[page.index(f'data-assessment-id="{first["id"]}" data-version') :].split("</tr>")[0]
    assert re.findall(r'data-history-version="(\d+)"', row) == ["1", "2"]
    assert "total 14" in row and "total 8" in row
    assert "reason: item 3 keyed on the wrong row" in row
    untouched = page[page.index(f'data-assessment-id="{kept["id"]}" data-version') :]
    untouched = untouched.split("</tr>")[0]
    assert "data-history-version" not in untouched


def _amend(tenant, assessment_id: str, version: int, items: list[int], reason: str) -> None:
    resp = tenant.client.post(
        f"/v1/assessments/{assessment_id}/amend",
        json={"items": items, "reason": reason},
        headers=tenant.headers() | {"If-Match": f'"{version}"'},
    )
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("corrected", [1, 2])
def test_the_patient_pages_histories_take_no_query_per_corrected_assessment(make_tenant, corrected):
    """The page loads every version of every corrected assessment at once: the statements it
    sends are the same in number for N corrected assessments as for 4 N."""
    counts = []
    for n in (corrected, corrected * 4):
        tenant = make_tenant()
        clinic = Clinic(tenant)
        clinic.phq9(0, 9)  # never corrected
        ids = []
        for i in range(n):
            form = clinic.phq9(i + 1, 14)
            _amend(tenant, form["id"], 1, [3, 3, 2, 0, 0, 0, 0, 0, 0], f"keyed wrong {i}")
            _amend(tenant, form["id"], 2, [1, 1, 1, 0, 0, 0, 0, 0, 0], f"keyed wrong again {i}")
            ids.append(form["id"])
        browser = _signed_in(tenant)
        engine = tenant.client.app.state.db.engine
        with _statements(engine) as cold:
            page = browser.get(f"/patients/{clinic.pid}")
        with _statements(engine) as warm:
            assert browser.get(f"/patients/{clinic.pid}").status_code == 200
        assert page.status_code == 200
        for i, assessment_id in enumerate(ids):
            row = page.text[page.text.index(f'data-assessment-id="{assessment_id}" data-version') :]
            row = row.split("</tr>")[0]
            assert re.findall(r'data-history-version="(\d+)"', row) == ["1", "2", "3"]
            assert "total 14" in row and "total 8" in row and "total 3" in row
            assert f"reason: keyed wrong {i}<" in row and f"reason: keyed wrong again {i}<" in row
        assert page.text.count("data-history-version") == 3 * n
        counts.append((len(cold), len(warm)))
    assert counts[0] == counts[1]
