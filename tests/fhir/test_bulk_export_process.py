"""A bulk export through a real ``kap-outcomes serve`` (uvicorn, its embedded worker) over
real HTTP: kick-off, polling as the status asks (Retry-After), the manifest, the files."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..migrated import migrated_sqlite
from ..processes import ServiceProcess, http_client, http_get, service_env
from ..test_server_process import _cli
from .conformance import check


def test_the_embedded_worker_runs_an_export(tmp_path: Path) -> None:
    env = service_env(migrated_sqlite(tmp_path / "kap.db"))
    env["KAP_EXPORT_DIR"] = str(tmp_path / "exports")
    token = _cli("token", "create", "--org", "clinic", "--role", "clinician", env=env, cwd=tmp_path)
    headers = {"Authorization": f"Bearer {token.strip().splitlines()[-1]}"}
    server = ServiceProcess(env, tmp_path)
    try:
        with http_client(base_url=server.base, headers=headers, timeout=20) as http:
            patient = http.post("/v1/patients", json={"external_id": "p-1"}).json()["id"]
            for items in ([1] * 9, [2] * 9):
                resp = http.post(
                    f"/v1/patients/{patient}/assessments",
                    json={
                        "instrument": "phq9",
                        "items": items,
                        "administered_at": "2026-03-02T15:04:05Z",
                    },
                )
                assert resp.status_code == 201, resp.text
            resp = http.get(
                "/fhir/R4/Patient/$export",
                headers={"Prefer": "respond-async", "Accept": "application/fhir+json"},
            )
            assert resp.status_code == 202, resp.text
            status_url = resp.headers["content-location"].replace(
                "http://127.0.0.1:8000", server.base
            )
            deadline = time.monotonic() + 30
            while (resp := http.get(status_url)).status_code == 202:
                assert time.monotonic() < deadline, "the export never finished"
                time.sleep(min(float(resp.headers["retry-after"]), 0.2))
            assert resp.status_code == 200, resp.text
            manifest = resp.json()
            counts = {}
            for entry in manifest["output"]:
                url = entry["url"].replace("http://127.0.0.1:8000", server.base)
                assert http_get(url, timeout=20).status_code == 401  # requiresAccessToken
                lines = http.get(url).text.splitlines()
                for line in lines:
                    check(json.loads(line))
                counts[entry["type"]] = len(lines)
            # one patient, two forms, each PHQ-9 with its total and item 9
            assert counts == {"Patient": 1, "QuestionnaireResponse": 2, "Observation": 4}
    finally:
        server.stop()
    assert "Traceback" not in server.output()
