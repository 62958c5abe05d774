"""``kap-outcomes demo``: a synthetic clinic seeded through the services, the same for the
same seed, refusing an organisation that holds data; and ``kap-outcomes signin-link``."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections import Counter
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from kap_outcomes.app import create_app
from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import ensure_organisation, issue_token
from kap_outcomes.config import Settings
from kap_outcomes.demo import clinic

from ..conftest import TEST_SIGNING_KEY
from ..migrated import migrated_sqlite
from ..processes import service_env

# one xdist worker runs the module: its module fixture seeds three clinics once
pytestmark = pytest.mark.xdist_group("test_demo")

TODAY = date(2026, 11, 1)


def _seed(db, slug: str, *, seed: int = 7, patients: int = 40, force: bool = False) -> list[str]:
    return clinic.seed(db, org=slug, seed=seed, patients=patients, today=TODAY, force=force)


def _token(db, slug: str) -> dict[str, str]:
    def create(conn):
        org_id = ensure_organisation(conn, slug)
        return issue_token(conn, organisation_id=org_id, role=Role.admin)[1]

    return {"Authorization": f"Bearer {db.run_write(create)}"}


def _clinic(client, headers) -> dict[str, dict]:
    """What a clinician sees of each patient, by external id (ids themselves differ)."""
    rows = client.get("/v1/caseload", params={"limit": 500}, headers=headers).json()["data"]
    out = {}
    for row in rows:
        pid = row["patient_id"]
        forms = client.get(
            f"/v1/patients/{pid}/assessments", params={"limit": 500}, headers=headers
        ).json()["data"]
        signals = client.get(f"/v1/patients/{pid}/signals", headers=headers).json()
        alerts = client.get("/v1/alerts", params={"patient_id": pid}, headers=headers).json()
        out[row["external_id"]] = {
            "status": row["booster_status"],
            "reasons": [r["code"] for r in signals["booster"]["reasons"]],
            "alert_level": row["alert_level"],
            "due": row["phq9_due"],
            "forms": sorted(
                (
                    f["instrument"],
                    f["administered_at"],
                    tuple(f["items"]),
                    f["total"],
                    f["prorated"],
                    f["version"],
                    f["risk"],
                )
                for f in forms
            ),
            "alerts": sorted((a["level"], a["kind"], a["status"]) for a in alerts["data"]),
        }
    return out


@pytest.fixture(scope="module")
def seeded(client, db):
    """Two organisations seeded alike (same seed, same today) and one with another seed."""
    slugs = [f"demo-{uuid.uuid4().hex[:10]}" for _ in range(3)]
    _seed(db, slugs[0])
    _seed(db, slugs[1])
    _seed(db, slugs[2], seed=8)
    return {slug: _clinic(client, _token(db, slug)) for slug in slugs}, slugs


def test_the_same_seed_gives_the_same_clinic(seeded):
    clinics, (a, b, c) = seeded
    assert clinics[a] == clinics[b]
    assert len(clinics[a]) == 40
    assert clinics[a] != clinics[c]  # another seed: other answers


def test_the_clinic_shows_every_booster_status_and_reason(seeded):
    clinics, (a, _, _) = seeded
    patients = clinics[a].values()
    statuses = Counter(p["status"] for p in patients)
    assert set(statuses) == {
        "not_applicable",
        "in_induction",
        "pending",
        "stable",
        "watch",
        "consider_booster",
    }
    reasons = {code for p in patients for code in p["reasons"]}
    assert {
        "no_dosing",
        "baseline_below_threshold",
        "no_response",
        "awaiting_measure",
        "relapse_confirmed",
        "relapse_unconfirmed",
        "rise_from_nadir",
        "worsening_trend",
        "gains_half_lost",
        "no_baseline",
        "stable",
        "in_induction",
    } <= reasons


def test_the_clinic_has_alerts_forms_and_due_measures(seeded):
    clinics, (a, _, _) = seeded
    patients = list(clinics[a].values())
    alerts = [alert for p in patients for alert in p["alerts"]]
    assert {status for _, _, status in alerts} == {"open", "acknowledged", "resolved"}
    assert {level for level, _, _ in alerts} == {"review", "urgent", "emergency"}
    forms = [f for p in patients for f in p["forms"]]
    assert {f[0] for f in forms} == {"phq9", "gad7", "cssrs"}
    assert any(f[4] for f in forms)  # prorated
    assert any(f[5] > 1 for f in forms)  # amended
    assert {f[6] for f in forms if f[0] == "cssrs"} == {"none", "low", "moderate", "high"}
    assert any(p["due"] for p in patients)
    # open alerts first, as the caseload orders them: the emergency on top
    assert patients[0]["alert_level"] == "emergency"


def test_an_organisation_with_data_is_refused(seeded, db, client):
    _clinics, (a, _, _) = seeded
    with pytest.raises(clinic.NotEmpty):
        _seed(db, a, patients=6)
    after = client.get("/v1/caseload", params={"limit": 500}, headers=_token(db, a)).json()
    assert len(after["data"]) == 40  # nothing added, no seeder token left behind either


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kap_outcomes.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_commands_print_a_signin_link_last(tmp_path):
    url = migrated_sqlite(tmp_path / "demo.db")
    env = service_env(url) | {"KAP_PUBLIC_BASE_URL": "https://outcomes.example.org/kap"}
    done = _cli("demo", "--patients", "12", "--seed", "3", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    link = done.stdout.strip().splitlines()[-1]
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "outcomes.example.org",
        "/kap/signin",
    )
    assert parts.query.startswith("code=") and "demo" not in parts.query  # nothing but the code
    again = _cli("demo", "--patients", "12", env=env, cwd=tmp_path)
    assert again.returncode == 1 and "already holds patients" in again.stderr
    forced = _cli("demo", "--patients", "6", "--seed", "4", "--force", env=env, cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    refused = _cli("signin-link", "--org", "demo", "--role", "patient", env=env, cwd=tmp_path)
    assert refused.returncode != 0
    made = _cli("signin-link", "--org", "demo", "--role", "admin", env=env, cwd=tmp_path)
    admin_link = urlsplit(made.stdout.strip().splitlines()[-1])
    # both links work once, against the app on that database
    settings = Settings(
        database_url=url, environment="test", signing_key=TEST_SIGNING_KEY, worker_embedded=False
    )
    app = create_app(settings)
    for query in (parts.query, admin_link.query):
        browser = TestClient(app, follow_redirects=False)
        resp = browser.get("/signin?" + query)
        assert resp.status_code == 303, resp.text
        page = browser.get("/")
        assert page.status_code == 200
        assert page.text.count("<tr data-patient-id=") == 18
