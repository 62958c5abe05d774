"""Organisation settings (GET/PUT /v1/organisation, admin, If-Match) and the clinic's calendar
in what people read (clinical-rules.md section 8).

By hand: 04:00 UTC is 20:00 (PST, UTC-8) or 21:00 (PDT, UTC-7) of the *previous* day in
America/Los_Angeles, so a PHQ-9 taken then reads with the previous day's date there.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from kap_outcomes.auth.models import Role


def _put(tenant, body, etag, role=Role.admin):
    headers = tenant.headers(role) | ({"If-Match": etag} if etag is not None else {})
    return tenant.client.put("/v1/organisation", json=body, headers=headers)


def test_default_is_utc_and_a_change_needs_if_match(tenant):
    got = tenant.get("/v1/organisation", Role.admin)
    assert got.status_code == 200, got.text
    assert (got.json()["timezone"], got.headers["ETag"]) == ("UTC", '"1"')
    assert got.json()["id"] == tenant.org_id
    assert _put(tenant, {"timezone": "America/Los_Angeles"}, None).status_code == 428
    assert _put(tenant, {"timezone": "America/Los_Angeles"}, '"9"').status_code == 412
    changed = _put(tenant, {"timezone": "America/Los_Angeles"}, '"1"')
    assert changed.status_code == 200, changed.text
    assert (changed.json()["timezone"], changed.headers["ETag"]) == ("America/Los_Angeles", '"2"')
    again = tenant.get("/v1/organisation", Role.admin)
    assert (again.json()["timezone"], again.headers["ETag"]) == ("America/Los_Angeles", '"2"')


@pytest.mark.parametrize(
    "zone",
    ["Mars/Olympus_Mons", "PST8PDT ", "", "../../etc/passwd", "america/los_angeles", "X" * 65],
)
def test_a_zone_that_is_no_iana_name_is_refused(tenant, zone):
    resp = _put(tenant, {"timezone": zone}, _etag(tenant))
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert tenant.get("/v1/organisation", Role.admin).json()["timezone"] == "UTC"


def test_settings_are_the_admins_and_each_organisation_its_own(tenant, make_tenant):
    assert tenant.get("/v1/organisation", Role.clinician).status_code == 403
    berlin = {"timezone": "Europe/Berlin"}
    assert _put(tenant, berlin, _etag(tenant), Role.clinician).status_code == 403
    assert _put(tenant, {"timezone": "Europe/Berlin"}, _etag(tenant), Role.admin).status_code == 200
    other = make_tenant()
    assert other.get("/v1/organisation", Role.admin).json()["timezone"] == "UTC"
    assert _put(tenant, {"timezone": "UTC", "name": "x"}, _etag(tenant)).status_code == 422


def _late_evening_day() -> date:
    """A UTC date D at least two days ago; the PHQ-9 is taken at 04:00 UTC on D."""
    return datetime.now(UTC).date() - timedelta(days=3)


def _at(day: date, hour: int = 4) -> str:
    return datetime.combine(day, time(hour), UTC).isoformat().replace("+00:00", "Z")


def _stable_patient(tenant) -> tuple[str, date]:
    pid = tenant.patient()
    d = _late_evening_day()
    assess = f"/v1/patients/{pid}/assessments"
    body = {"instrument": "phq9", "items": [3, 3, 3, 3, 3, 3, 3, 1, 0]}
    first = tenant.post(assess, body | {"administered_at": _at(d - timedelta(days=14))})
    assert first.status_code == 201, first.text
    for back in (12, 10, 8, 6, 4, 2):
        dose = {"kind": "dosing", "occurred_at": _at(d - timedelta(days=back))}
        dose["dose"] = {"route": "iv", "amount_mg": 35}
        assert tenant.post(f"/v1/patients/{pid}/sessions", dose).status_code == 201
    body = {"instrument": "phq9", "items": [3, 3, 0, 0, 0, 0, 0, 0, 0], "administered_at": _at(d)}
    assert tenant.post(assess, body).status_code == 201
    return pid, d


def test_reason_sentences_show_the_clinics_date(tenant):
    pid, d = _stable_patient(tenant)
    utc = tenant.get(f"/v1/patients/{pid}/signals").json()["booster"]
    assert utc["status"] == "stable"
    assert utc["reasons"][0]["detail"].startswith(f"PHQ-9 6 on {d.isoformat()} ")

    assert _put(tenant, {"timezone": "America/Los_Angeles"}, _etag(tenant)).status_code == 200
    local = tenant.get(f"/v1/patients/{pid}/signals").json()["booster"]
    evening = (d - timedelta(days=1)).isoformat()  # 20:00 or 21:00 the evening before
    last_dose = (d - timedelta(days=3)).isoformat()
    assert local["reasons"][0]["detail"] == (
        f"PHQ-9 6 on {evening} is at the nadir of 6 on {evening}; no watch rule holds since "
        f"the latest dose on {last_dose}."
    )
    # intervals are elapsed time: the zone moves no count
    assert local["days_since_last_dose"] == utc["days_since_last_dose"]
    assert local["status"] == utc["status"]


def _etag(tenant):
    """The settings' current ETag (``If-Match: *`` is refused: it names no version)."""
    return tenant.get("/v1/organisation", Role.admin).headers["ETag"]
