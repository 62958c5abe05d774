"""The caseload over HTTP: order, filters, paging, freshness after writes, and its cost."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event

from kap_outcomes.auth.models import Role

from .course import Clinic, _day

ORDER = ["emergency", "urgent", "review", "consider_booster", "watch", "rest"]


def _caseload(tenant, role=Role.clinician, **params) -> dict:
    resp = tenant.get("/v1/caseload", role, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _ids(tenant, **params) -> list[str]:
    return [row["patient_id"] for row in _caseload(tenant, **params)["data"]]


def _induction(clinic: Clinic, baseline: int = 22) -> None:
    clinic.phq9(0, baseline)
    for day in (1, 3, 5, 8, 10, 12):
        clinic.dose(day)


def _consider_booster(tenant) -> Clinic:
    clinic = Clinic(tenant)
    _induction(clinic)
    for day, total in ((13, 6), (34, 13), (39, 14)):
        clinic.phq9(day, total)
    return clinic


def _watch(tenant) -> Clinic:
    clinic = Clinic(tenant)
    _induction(clinic)
    for day, total in ((13, 6), (34, 13)):
        clinic.phq9(day, total)
    return clinic


def _stable(tenant) -> Clinic:
    clinic = Clinic(tenant)
    _induction(clinic)
    clinic.phq9(13, 6)
    return clinic


def _cssrs(clinic: Clinic, items: list[int | None], day: float = 50) -> dict:
    body = {"instrument": "cssrs", "items": items, "administered_at": _day(day)}
    resp = clinic.tenant.post(f"/v1/patients/{clinic.pid}/assessments", body)
    assert resp.status_code == 201, resp.text
    return resp.json()


def _population(tenant) -> dict[str, Clinic]:
    """One patient per caseload band; the alert patients also need a booster (order check)."""
    people = {
        "rest": Clinic(tenant),
        "watch": _watch(tenant),
        "stable": _stable(tenant),
        "consider_booster": _consider_booster(tenant),
        "review": _stable(tenant),
        "urgent": Clinic(tenant),
        "emergency": Clinic(tenant),
    }
    people["review"].phq9(45, 7, item9=1)
    people["urgent"].phq9(45, 12, item9=2)
    _cssrs(people["emergency"], [1, 1, 0, 0, 1, 0, None])  # plan and intent: high
    return people


def test_open_alerts_first_then_booster_need_then_the_rest(tenant):
    people = _population(tenant)
    rows = _caseload(tenant)["data"]
    by_id = {c.pid: name for name, c in people.items()}
    names = [by_id[r["patient_id"]] for r in rows]
    assert names[:5] == ["emergency", "urgent", "review", "consider_booster", "watch"]
    rest = [r["patient_id"] for r in rows[5:]]
    assert rest == sorted(rest) and set(names[5:]) == {"rest", "stable"}

    first = rows[0]
    assert first["alert_level"] == "emergency" and first["open_alerts"] == 1
    assert rows[3]["booster_status"] == "consider_booster" and rows[3]["alert_level"] == "none"
    booster = rows[3]
    assert booster["phq9"]["total"] == 14 and booster["phq9"]["severity"] == "moderate"
    assert booster["gad7"] is None and booster["policy_version"] == "default"
    assert booster["phq9_due"] is True and booster["days_since_last_phq9"] == 21
    assert rows[-1]["external_id"].startswith("ext-")


def test_filters(tenant):
    people = _population(tenant)
    assert _ids(tenant, booster_status="watch") == [people["watch"].pid]
    assert _ids(tenant, booster_status="consider_booster") == [people["consider_booster"].pid]
    assert _ids(tenant, alert="open") == [people[n].pid for n in ("emergency", "urgent", "review")]
    assert _ids(tenant, alert="open", booster_status="stable") == [people["review"].pid]


def test_cursor_paging_walks_every_patient_once_in_order(tenant):
    _population(tenant)
    everyone = _ids(tenant)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = _caseload(tenant, **params)
        assert len(page["data"]) <= 2
        seen += [r["patient_id"] for r in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everyone and len(seen) == 7


def test_an_alert_puts_the_patient_first_until_it_is_resolved(tenant):
    stable = _stable(tenant)
    booster = _consider_booster(tenant)
    assert _ids(tenant)[0] == booster.pid

    opened = stable.phq9(50, 6, item9=1)
    [alert] = opened["alerts"]
    rows = _caseload(tenant)["data"]
    assert rows[0]["patient_id"] == stable.pid and rows[0]["alert_level"] == "review"

    # Acknowledged is not resolved: still first.
    assert tenant.post(f"/v1/alerts/{alert['id']}/acknowledge", {"note": "seen"}).status_code == 200
    assert _ids(tenant)[0] == stable.pid
    assert tenant.post(f"/v1/alerts/{alert['id']}/resolve", {"note": "safe"}).status_code == 200
    rows = _caseload(tenant)["data"]
    assert rows[0]["patient_id"] == booster.pid
    assert rows[1]["alert_level"] == "none" and rows[1]["open_alerts"] == 0


def test_every_write_shows_on_the_next_read(tenant):
    clinic = Clinic(tenant)
    assert _caseload(tenant)["data"][0]["booster_status"] == "not_applicable"
    clinic.phq9(0, 22)
    row = _caseload(tenant)["data"][0]
    assert row["phq9"]["total"] == 22 and row["booster_status"] == "not_applicable"
    for day in (1, 3, 5, 8, 10, 12):
        clinic.dose(day)
        assert _caseload(tenant)["data"][0]["booster_status"] in ("in_induction", "pending")
    assert _caseload(tenant)["data"][0]["booster_status"] == "pending"
    clinic.phq9(13, 6)
    clinic.phq9(34, 13)
    assert _caseload(tenant)["data"][0]["booster_status"] == "watch"
    clinic.gad7(35, 9)
    assert _caseload(tenant)["data"][0]["gad7"]["total"] == 9
    clinic.dose(40, kind="booster")
    assert _caseload(tenant)["data"][0]["booster_status"] == "pending"


def test_a_policy_change_recomputes_the_organisation(tenant):
    clinic = Clinic(tenant)
    clinic.phq9(0, 22)
    clinic.dose(1)
    clinic.dose(2)
    assert _caseload(tenant)["data"][0]["booster_status"] == "in_induction"
    headers = tenant.headers(Role.admin) | {"If-Match": '"default"'}
    # Induction length belongs to the course (set when it opened); the rise threshold does not.
    body = {"phq9": {"rise_from_nadir": 3}}
    assert tenant.client.put("/v1/policy", json=body, headers=headers).status_code == 200
    assert _caseload(tenant)["data"][0]["policy_version"] == "v1"


def test_only_staff_and_well_formed_queries(tenant):
    clinic = Clinic(tenant)
    resp = tenant.client.get("/v1/caseload", headers=tenant.patient_token(clinic.pid))
    assert resp.status_code == 403
    assert tenant.client.get("/v1/caseload").status_code == 401
    for params in (
        {"cursor": "nonsense"},
        {"booster_status": "bad"},
        {"alert": "closed"},
        {"limit": 0},
        {"limit": 501},
    ):
        assert tenant.get("/v1/caseload", params=params).status_code == 422, params


def test_organisations_see_only_their_patients(tenant, make_tenant):
    mine = Clinic(tenant)
    other = make_tenant()
    Clinic(other).phq9(0, 12, item9=3)
    assert _ids(tenant) == [mine.pid]


@contextmanager
def _statements(engine):
    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.mark.parametrize("size", [2, 8])
def test_the_caseload_runs_no_query_per_patient(make_tenant, size):
    """Recomputing N stale summaries and reading the page: the same statements for any N."""
    counts = []
    for patients in (size, size * 3):
        tenant = make_tenant()
        for _ in range(patients):
            _stable(tenant)
        engine = tenant.client.app.state.db.engine
        with _statements(engine) as cold:
            assert len(_caseload(tenant)["data"]) == patients
        with _statements(engine) as warm:
            _caseload(tenant)
        counts.append((len(cold), len(warm)))
    assert counts[0] == counts[1]
