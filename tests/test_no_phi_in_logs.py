"""No patient data in the server's output, even when the database fails on a patient's row.

A real server process on the suite's database (SQLite or PostgreSQL: the drivers differ in
what their errors carry). A trigger makes the database refuse one organisation's new patients
with an error of its own kind (not "unavailable", not "value out of range"): the request ends
in a 500, and the process's whole output (logs, and whatever the server prints) must hold no
trace of the external id that was sent, neither as a bound parameter nor inside the driver's
message (PostgreSQL's carries the value here, as a unique violation's ``DETAIL`` would).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import ensure_organisation, issue_token
from kap_outcomes.db import Database

from .conftest import TEST_SIGNING_KEY
from .processes import ServiceProcess, http_get, http_post, service_env
from .refusals import refusing_inserts


def test_a_database_error_on_a_patient_row_leaves_no_trace_of_it(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    slug = f"phi-{uuid.uuid4().hex[:12]}"

    def tenant(conn: Any) -> tuple[str, str]:
        org_id = ensure_organisation(conn, slug)
        return org_id, issue_token(conn, organisation_id=org_id, role=Role.clinician)[1]

    org_id, token = db.run_write(tenant)
    external_id = f"MRN-{uuid.uuid4().hex}"
    env = service_env(database_url) | {
        "KAP_ENVIRONMENT": "test",
        "KAP_SIGNING_KEY": TEST_SIGNING_KEY,
        "KAP_LOG_LEVEL": "DEBUG",
    }
    with refusing_inserts(db, "patients", org_id):
        server = ServiceProcess(env, tmp_path)
        try:
            resp = http_post(
                f"{server.base}/v1/patients",
                json={"external_id": external_id},
                headers={"Authorization": f"Bearer {token}", "X-Request-ID": "phi-probe"},
                timeout=30,
            )
            listed = http_get(
                f"{server.base}/v1/patients",
                params={"external_id": external_id},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
        finally:
            server.stop()
    output = server.log_path.read_text(errors="replace")
    assert resp.status_code == 500, resp.text  # neither 503 (unavailable) nor 422 (a value)
    assert external_id not in resp.text
    assert listed.status_code == 200 and listed.json()["data"] == []
    assert "unhandled error on POST" in output, output  # the failure was logged, by type
    assert external_id not in output, output
    assert external_id[4:] not in output  # not even in part
    assert "Traceback" not in output, output
