"""FHIR Bulk Data export (Bulk Data Access IG 2.0): kick-off, status, manifest, NDJSON files,
cancel, groups, and who may see what. Real HTTP through the app; the exports are run by the
worker's own export runner (``run_next``: claim, write, finish), the same code the worker
runs in its thread."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from kap_outcomes.auth.models import Role
from kap_outcomes.bulk import runner
from kap_outcomes.bulk.runner import ExportRunner, run_next

from .conformance import check

KICK_OFF = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
NDJSON = "application/fhir+ndjson"


def _patient(tenant: Any, conditions: list[str] | None = None) -> str:
    body: dict[str, Any] = {"external_id": f"ext-{uuid.uuid4()}"}
    if conditions:
        body["conditions"] = conditions
    resp = tenant.post("/v1/patients", body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def _submit(tenant: Any, patient_id: str, instrument: str, items: list[Any], at: str) -> str:
    resp = tenant.post(
        f"/v1/patients/{patient_id}/assessments",
        {"instrument": instrument, "items": items, "administered_at": at},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def _kick_off(tenant: Any, path: str, role: Role = Role.clinician, **params: Any) -> str:
    resp = tenant.client.get(
        f"/fhir/R4/{path}", params=params, headers=tenant.headers(role) | KICK_OFF
    )
    assert resp.status_code == 202, resp.text
    assert resp.headers["content-type"].startswith("application/fhir+json")
    check(resp.json())
    location = resp.headers["content-location"]
    assert location.startswith("http://127.0.0.1:8000/fhir/R4/bulk/")  # the configured base
    return location.removeprefix("http://127.0.0.1:8000")


def _run_all(tenant: Any, settings: Any) -> None:
    while run_next(tenant.db, settings, owner=str(uuid.uuid4())):
        pass


def _manifest(tenant: Any, status_url: str, role: Role = Role.clinician) -> dict[str, Any]:
    resp = tenant.get(status_url, role)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert "expires" in resp.headers
    manifest: dict[str, Any] = resp.json()
    assert manifest["requiresAccessToken"] is True
    assert manifest["error"] == []
    return manifest


def _files(tenant: Any, manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every file of the manifest, downloaded; every line checked by fhirclient (R4, strict),
    fhir.resources (R4B) and the hand-written rules."""
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in manifest["output"]:
        resp = tenant.get(entry["url"].removeprefix("http://127.0.0.1:8000"))
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"].startswith(NDJSON)
        assert resp.content.endswith(b"\n")
        lines = resp.content.decode().splitlines()
        resources = [check(json.loads(line)) for line in lines]
        assert all(r["resourceType"] == entry["type"] for r in resources)
        assert entry["count"] == len(resources)
        out[entry["type"]] = resources
    return out


def _subjects(files: dict[str, list[dict[str, Any]]]) -> set[str]:
    found = set()
    for kind, resources in files.items():
        for r in resources:
            found.add(r["id"] if kind == "Patient" else r["subject"]["reference"].split("/")[1])
    return found


@pytest.fixture
def clinic(make_tenant: Any) -> dict[str, Any]:
    """Two patients with forms, one with recorded conditions; another organisation with a
    patient and a form of its own."""
    tenant, other = make_tenant(), make_tenant()
    first = _patient(tenant)
    second = _patient(tenant, ["depression", "dysthymia"])
    forms = [
        _submit(tenant, first, "phq9", [1, 2, 1, 0, 3, 1, 0, 2, 1], "2026-03-02T10:00:00Z"),
        _submit(tenant, first, "gad7", [1] * 7, "2026-03-02T10:05:00Z"),
        _submit(tenant, second, "phq9", [0] * 9, "2026-03-03T10:00:00Z"),
    ]
    stranger = _patient(other, ["depression"])
    _submit(other, stranger, "phq9", [3] * 9, "2026-03-03T10:00:00Z")
    return {
        "tenant": tenant,
        "other": other,
        "first": first,
        "second": second,
        "forms": forms,
        "stranger": stranger,
    }


@pytest.mark.parametrize("path", ["$export", "Patient/$export"])
def test_round_trip_every_line_valid_and_only_this_organisation(
    clinic: dict[str, Any], settings: Any, path: str
) -> None:
    tenant = clinic["tenant"]
    status_url = _kick_off(tenant, path)
    waiting = tenant.get(status_url)
    assert waiting.status_code == 202
    assert waiting.headers["x-progress"] == "queued"
    assert int(waiting.headers["retry-after"]) >= 1
    _run_all(tenant, settings)
    manifest = _manifest(tenant, status_url)
    assert manifest["request"] == f"http://127.0.0.1:8000/fhir/R4/{path}"
    assert datetime.fromisoformat(manifest["transactionTime"]) <= datetime.now(UTC)
    files = _files(tenant, manifest)
    assert [e["type"] for e in manifest["output"]] == [
        "Patient",
        "QuestionnaireResponse",
        "Observation",
        "Condition",
    ]
    assert sorted(p["id"] for p in files["Patient"]) == sorted([clinic["first"], clinic["second"]])
    assert sorted(q["id"] for q in files["QuestionnaireResponse"]) == sorted(clinic["forms"])
    # by hand: a PHQ-9 gives its total and item 9, a GAD-7 its total: 2 + 1 + 2
    assert len(files["Observation"]) == 5
    phq9 = next(o for o in files["Observation"] if o["id"] == f"{clinic['forms'][0]}-total")
    assert phq9["valueQuantity"]["value"] == 1 + 2 + 1 + 0 + 3 + 1 + 0 + 2 + 1
    # the second patient's two recorded conditions, SNOMED CT coded
    codes = sorted(c["code"]["coding"][0]["code"] for c in files["Condition"])
    assert codes == ["35489007", "78667006"]
    assert _subjects(files) == {clinic["first"], clinic["second"]}
    assert clinic["stranger"] not in json.dumps(files)


def test_type_and_since_filters(clinic: dict[str, Any], settings: Any, db: Any) -> None:
    tenant = clinic["tenant"]
    manifest = _manifest(
        tenant, _kick_off_and_run(tenant, settings, "$export", _type="Observation,Patient")
    )
    assert [e["type"] for e in manifest["output"]] == ["Patient", "Observation"]
    # _since: only what changed after it (lastUpdated later than the instant)
    time.sleep(0.01)
    cut = datetime.now(UTC)
    time.sleep(0.01)
    late = _submit(tenant, clinic["first"], "gad7", [2] * 7, "2026-03-04T10:00:00Z")
    since = cut.isoformat().replace("+00:00", "Z")
    files = _files(
        tenant,
        _manifest(tenant, _kick_off_and_run(tenant, settings, "Patient/$export", _since=since)),
    )
    assert sorted(files) == ["Observation", "QuestionnaireResponse"]  # no patient is newer
    assert [q["id"] for q in files["QuestionnaireResponse"]] == [late]
    assert [o["id"] for o in files["Observation"]] == [f"{late}-total"]
    for q in files["QuestionnaireResponse"]:
        assert datetime.fromisoformat(q["meta"]["lastUpdated"]) > cut
    # nothing changed after now: an empty manifest
    later = (datetime.now(UTC) + timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    empty = _manifest(tenant, _kick_off_and_run(tenant, settings, "$export", _since=later))
    assert empty["output"] == []


def _kick_off_and_run(tenant: Any, settings: Any, path: str, **params: Any) -> str:
    url = _kick_off(tenant, path, **params)
    _run_all(tenant, settings)
    return url


def test_group_export_only_its_members(clinic: dict[str, Any], settings: Any) -> None:
    tenant, other = clinic["tenant"], clinic["other"]
    resp = tenant.post(
        "/fhir/R4/Group",
        {
            "resourceType": "Group",
            "type": "person",
            "actual": True,
            "name": "spring cohort",
            "member": [{"entity": {"reference": f"Patient/{clinic['second']}"}}],
        },
    )
    assert resp.status_code == 201, resp.text
    group = check(resp.json())
    assert group["quantity"] == 1
    assert resp.headers["location"].endswith(f"/Group/{group['id']}/_history/1")
    read = tenant.get(f"/fhir/R4/Group/{group['id']}")
    assert read.status_code == 200
    assert check(read.json())["member"] == [
        {"entity": {"reference": f"Patient/{clinic['second']}"}}
    ]
    found = check(tenant.get("/fhir/R4/Group", params={"name": "spring cohort"}).json())
    assert [e["resource"]["id"] for e in found["entry"]] == [group["id"]]
    files = _files(
        tenant,
        _manifest(tenant, _kick_off_and_run(tenant, settings, f"Group/{group['id']}/$export")),
    )
    assert _subjects(files) == {clinic["second"]}
    assert [p["id"] for p in files["Patient"]] == [clinic["second"]]
    assert [q["id"] for q in files["QuestionnaireResponse"]] == [clinic["forms"][2]]
    # another organisation sees neither the group nor its export
    assert other.get(f"/fhir/R4/Group/{group['id']}").status_code == 404
    resp = other.client.get(
        f"/fhir/R4/Group/{group['id']}/$export", headers=other.headers() | KICK_OFF
    )
    assert resp.status_code == 404
    assert check(other.get("/fhir/R4/Group").json()).get("entry", []) == []


def test_a_group_holds_only_the_organisations_patients(
    clinic: dict[str, Any], count_rows: Any
) -> None:
    tenant = clinic["tenant"]
    for member in (clinic["stranger"], "no-such-patient"):
        resp = tenant.post(
            "/fhir/R4/Group",
            {
                "resourceType": "Group",
                "type": "person",
                "actual": True,
                "name": "x",
                "member": [{"entity": {"reference": f"Patient/{member}"}}],
            },
        )
        assert resp.status_code == 422, resp.text
        check(resp.json())
    for bad in (
        {"resourceType": "Group", "type": "device", "actual": True, "name": "x"},
        {"resourceType": "Group", "type": "person", "actual": True},
        {"resourceType": "Group", "type": "person", "name": "x", "characteristic": []},
        {"resourceType": "Group", "type": "person", "name": "x", "member": [{"entity": {}}]},
    ):
        resp = tenant.post("/fhir/R4/Group", bad)
        assert resp.status_code == 422, resp.text
        check(resp.json())
    resp = tenant.post("/fhir/R4/Group", {"resourceType": "Patient"})
    assert resp.status_code == 400
    assert count_rows("patient_groups", tenant.org_id) == 0
    patient = tenant.patient_token(clinic["first"])
    assert tenant.client.get("/fhir/R4/Group", headers=patient).status_code == 403


def test_cancel_while_queued_running_and_after(
    clinic: dict[str, Any], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = clinic["tenant"]
    # queued: deleted before any worker took it
    queued = _kick_off(tenant, "$export")
    assert tenant.client.delete(queued, headers=tenant.headers()).status_code == 202
    assert tenant.get(queued).status_code == 404
    assert tenant.client.delete(queued, headers=tenant.headers()).status_code == 404
    # running: the worker notices at its next heartbeat, stops and leaves no file
    running = _kick_off(tenant, "$export")
    owner = str(uuid.uuid4())
    row = _claim_own(tenant, settings, owner)
    assert running.endswith(row.id)
    assert tenant.client.delete(running, headers=tenant.headers()).status_code == 202
    monkeypatch.setattr(runner, "HEARTBEAT_S", 0.0)
    runner.run_claimed(tenant.db, settings, row=row, owner=owner, stop=threading.Event())
    assert not (settings.export_dir / row.id).exists()
    assert tenant.get(running).status_code == 404
    # completed: deleting it deletes its files
    done = _kick_off_and_run(tenant, settings, "$export")
    manifest = _manifest(tenant, done)
    export_id = done.rsplit("/", 1)[1]
    assert (settings.export_dir / export_id / "Patient.ndjson").exists()
    assert tenant.client.delete(done, headers=tenant.headers()).status_code == 202
    assert not (settings.export_dir / export_id).exists()
    url = manifest["output"][0]["url"].removeprefix("http://127.0.0.1:8000")
    assert tenant.get(url).status_code == 404


def test_who_may_follow_and_download(clinic: dict[str, Any], settings: Any) -> None:
    tenant, other = clinic["tenant"], clinic["other"]
    status_url = _kick_off_and_run(tenant, settings, "$export")
    manifest = _manifest(tenant, status_url)
    url = manifest["output"][0]["url"].removeprefix("http://127.0.0.1:8000")
    # the organisation's other staff may (the admin, the integration)
    assert _manifest(tenant, status_url, Role.admin)["output"] == manifest["output"]
    assert tenant.get(url, Role.integration).status_code == 200
    # another organisation: as if it did not exist
    for path in (status_url, url):
        resp = other.get(path)
        assert resp.status_code == 404
        check(resp.json())
    assert other.client.delete(status_url, headers=other.headers()).status_code == 404
    # a patient token: never
    patient = tenant.patient_token(clinic["first"])
    for path in (status_url, url):
        assert tenant.client.get(path, headers=patient).status_code == 403
    assert tenant.client.get("/fhir/R4/$export", headers=patient | KICK_OFF).status_code == 403
    # no token: 401
    assert tenant.client.get(url).status_code == 401
    # a type the export did not write
    partial = _manifest(tenant, _kick_off_and_run(tenant, settings, "$export", _type="Patient"))
    missing = partial["output"][0]["url"].replace("Patient.ndjson", "Condition.ndjson")
    assert tenant.get(missing.removeprefix("http://127.0.0.1:8000")).status_code == 404


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"Accept": "application/fhir+json"}, {}),  # no Prefer: respond-async
        (KICK_OFF, {"_type": "Patient,Medication"}),
        (KICK_OFF, {"_typeFilter": "Observation?code=44261-6"}),
        (KICK_OFF, {"_elements": "id"}),
        (KICK_OFF, {"patient": "Patient/1"}),
        (KICK_OFF, {"_outputFormat": "text/csv"}),
        (KICK_OFF, {"_since": "2026-03-01"}),  # a date, not an instant
        (KICK_OFF, {"_since": "2026-02-30T00:00:00Z"}),
        (KICK_OFF | {"Accept": "application/xml"}, {}),
    ],
)
def test_refused_kick_offs_store_nothing(
    tenant: Any, count_rows: Any, headers: dict[str, str], params: dict[str, str]
) -> None:
    resp = tenant.client.get("/fhir/R4/$export", params=params, headers=tenant.headers() | headers)
    assert resp.status_code == 400, resp.text
    assert check(resp.json())["resourceType"] == "OperationOutcome"
    assert count_rows("bulk_exports", tenant.org_id) == 0


def test_an_unsupported_kick_off_parameter_is_named_cut_short(tenant: Any, count_rows: Any) -> None:
    name = "_x" + "y" * 98  # a 100-character name: shown as its first 64 and "..."
    resp = tenant.client.get(
        "/fhir/R4/$export", params={name: "1"}, headers=tenant.headers() | KICK_OFF
    )
    assert resp.status_code == 400, resp.text
    issue = check(resp.json())["issue"][0]
    shown = "_x" + "y" * 62 + "..."
    assert (issue["code"], issue["expression"]) == ("not-supported", [shown])
    assert "$export parameter" in issue["diagnostics"] and "y" * 63 not in issue["diagnostics"]
    assert count_rows("bulk_exports", tenant.org_id) == 0


def test_a_post_kick_off_is_not_supported(tenant: Any, count_rows: Any) -> None:
    for path in ("$export", "Patient/$export"):
        resp = tenant.client.post(
            f"/fhir/R4/{path}",
            json={"resourceType": "Parameters"},
            headers=tenant.headers() | KICK_OFF,
        )
        assert resp.status_code == 405, resp.text
        check(resp.json())
    assert count_rows("bulk_exports", tenant.org_id) == 0


def test_lenient_handling_ignores_what_it_does_not_support(tenant: Any) -> None:
    resp = tenant.client.get(
        "/fhir/R4/$export",
        params={"_typeFilter": "Observation?code=x", "_type": "Observation,Medication"},
        headers=tenant.headers() | {"Prefer": "respond-async, handling=lenient"},
    )
    assert resp.status_code == 202, resp.text


def test_kick_off_and_download_are_audited_without_a_patient(
    clinic: dict[str, Any], settings: Any, db: Any
) -> None:
    tenant = clinic["tenant"]
    status_url = _kick_off_and_run(tenant, settings, "Patient/$export")
    export_id = status_url.rsplit("/", 1)[1]
    _files(tenant, _manifest(tenant, status_url))
    rows = db.run_read(
        lambda c: c.execute(
            text(
                "SELECT action, resource_type, resource_id, patient_id, status FROM audit_events"
                " WHERE organisation_id = :o AND resource_id = :e ORDER BY at"
            ),
            {"o": tenant.org_id, "e": export_id},
        ).all()
    )
    actions = [tuple(r) for r in rows]
    assert actions[0] == ("GET /fhir/R4/Patient/$export", "$export", export_id, None, 202)
    assert ("GET /fhir/R4/bulk/{export_id}", "bulk", export_id, None, 200) in actions
    downloads = [a for a in actions if a[0] == "GET /fhir/R4/bulk/{export_id}/{file_name}"]
    assert len(downloads) == 4 and all(a[3] is None and a[4] == 200 for a in downloads)


def _claim_own(tenant: Any, settings: Any, owner: str) -> Any:
    """Claim exports until one of the tenant's own: the queue is the whole database's, oldest
    first, so exports other tests left queued come first (they stay leased to ``owner``)."""
    while (row := runner.claim_next(tenant.db, settings, owner)) is not None:
        if row.organisation_id == tenant.org_id:
            return row
    pytest.fail("the tenant's export was not in the queue")


def test_a_dead_workers_export_is_claimed_again(clinic: dict[str, Any], settings: Any) -> None:
    tenant = clinic["tenant"]
    status_url = _kick_off(tenant, "$export")
    row = _claim_own(tenant, settings, "dead-worker")
    # its lease is still running: nobody else takes it
    assert runner.claim_next(tenant.db, settings, "another") is None
    tenant.db.run_write(
        lambda c: c.execute(
            text("UPDATE bulk_exports SET lease_until = :t WHERE id = :i"),
            {"t": datetime.now(UTC) - timedelta(seconds=1), "i": row.id},
        )
    )
    assert run_next(tenant.db, settings, owner="another")
    assert len(_files(tenant, _manifest(tenant, status_url))["Patient"]) == 2


def test_the_worker_runs_exports_and_sweeps_expired_ones(
    clinic: dict[str, Any], settings: Any
) -> None:
    tenant = clinic["tenant"]
    status_url = _kick_off(tenant, "Patient/$export", _type="Patient")
    export_id = status_url.rsplit("/", 1)[1]

    async def work() -> None:
        # every claimable export of this worker's database, ours among them: other tests may
        # have left older ones queued, and the runner looks at most once per poll interval
        eager = settings.model_copy(update={"worker_poll_interval_s": 1e-6})
        exports = ExportRunner(tenant.db, eager, str(uuid.uuid4()))
        while await exports.step():
            await exports.finished()

    asyncio.run(work())
    assert len(_files(tenant, _manifest(tenant, status_url))["Patient"]) == 2
    tenant.db.run_write(
        lambda c: c.execute(
            text("UPDATE bulk_exports SET expires_at = :t WHERE id = :i"),
            {"t": datetime.now(UTC) - timedelta(seconds=1), "i": export_id},
        )
    )
    assert runner.sweep(tenant.db, settings) >= 1
    assert tenant.get(status_url).status_code == 404
    assert not (settings.export_dir / export_id).exists()


def test_a_stopping_worker_hands_its_export_back(clinic: dict[str, Any], settings: Any) -> None:
    tenant = clinic["tenant"]
    status_url = _kick_off(tenant, "$export")
    stop = threading.Event()
    stop.set()  # the worker is shutting down as the export starts
    row = runner.claim_next(tenant.db, settings, "stopping")
    runner.run_claimed(tenant.db, settings, row=row, owner="stopping", stop=stop)
    waiting = tenant.get(status_url)
    assert waiting.status_code == 202 and waiting.headers["x-progress"] == "queued"
    assert run_next(tenant.db, settings, owner="next")  # and the next worker finishes it
    assert len(_files(tenant, _manifest(tenant, status_url))["Patient"]) == 2


def test_a_read_only_smart_backend_exports_and_cancels(
    clinic: dict[str, Any], settings: Any
) -> None:
    """SMART Backend Services with read scopes only: it may kick off, follow, download and
    cancel its export (cancelling changes no data), but not define a Group (a write)."""
    from ..api.test_smart import Backend, bearer

    tenant = clinic["tenant"]
    backend = Backend(tenant, algorithm="ES384", scope="system/*.rs")
    token = bearer(backend.access_token(scope="system/*.rs"))
    resp = tenant.client.get("/fhir/R4/$export", headers=token | KICK_OFF)
    assert resp.status_code == 202, resp.text
    status_url = resp.headers["content-location"].removeprefix("http://127.0.0.1:8000")
    _run_all(tenant, settings)
    manifest = tenant.client.get(status_url, headers=token).json()
    url = manifest["output"][0]["url"].removeprefix("http://127.0.0.1:8000")
    assert tenant.client.get(url, headers=token).status_code == 200
    assert tenant.client.delete(status_url, headers=token).status_code == 202
    assert tenant.client.get(status_url, headers=token).status_code == 404
    group = {"resourceType": "Group", "type": "person", "actual": True, "name": "x"}
    assert tenant.client.post("/fhir/R4/Group", json=group, headers=token).status_code == 403


def test_an_organisation_queues_a_few_exports_at_most(tenant: Any, count_rows: Any) -> None:
    for _ in range(4):
        _kick_off(tenant, "$export")
    resp = tenant.client.get("/fhir/R4/$export", headers=tenant.headers() | KICK_OFF)
    assert resp.status_code == 429, resp.text
    assert int(resp.headers["retry-after"]) >= 1
    check(resp.json())
    assert count_rows("bulk_exports", tenant.org_id) == 4


def test_an_unencoded_plus_in_the_output_format_is_understood(tenant: Any) -> None:
    resp = tenant.client.get(
        "/fhir/R4/$export?_outputFormat=application/fhir+ndjson",
        headers=tenant.headers() | KICK_OFF,
    )
    assert resp.status_code == 202, resp.text


def test_an_ehr_total_and_identifiers_are_exported_as_the_api_serves_them(
    tenant: Any, settings: Any
) -> None:
    """A PHQ-9 sent as a total alone is exported as its Observation only (it has no form to be
    a QuestionnaireResponse), and a Patient carries the EHR's identifiers, as the FHIR API
    shows them."""
    mrn = {"system": "urn:oid:2.16.840.1.113883.19.5", "value": f"MRN-{uuid.uuid4().hex[:8]}"}
    resp = tenant.post("/v1/patients", {"external_id": f"ext-{uuid.uuid4()}", "identifiers": [mrn]})
    assert resp.status_code == 201, resp.text
    pid = resp.json()["id"]
    sent = tenant.post(
        f"/v1/patients/{pid}/assessments",
        {
            "instrument": "phq9",
            "total": 12,
            "items": None,
            "administered_at": "2026-03-02T10:00:00Z",
        },
    )
    assert sent.status_code == 201, sent.text
    files = _files(tenant, _manifest(tenant, _kick_off_and_run(tenant, settings, "$export")))
    assert files.get("QuestionnaireResponse", []) == []
    (total,) = [o for o in files["Observation"] if o["code"]["coding"][0]["code"] == "44261-6"]
    assert total["valueQuantity"]["value"] == 12 and "derivedFrom" not in total
    (patient,) = files["Patient"]
    assert {"system": mrn["system"], "value": mrn["value"]} in [
        {"system": i["system"], "value": i["value"]} for i in patient["identifier"]
    ]
    assert tenant.get(f"/fhir/R4/Patient/{pid}").json()["identifier"] == patient["identifier"]
