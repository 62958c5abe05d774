"""A patient's recorded conditions as FHIR R4 Conditions (issue #16: "shown in FHIR
(`Patient`, `Condition`)"): problem-list items, SNOMED CT coded where a concept matches."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .conformance import check
from .test_fhir_read import FHIR, fhir_get

SNOMED = "http://snomed.info/sct"
STRICT = {"Prefer": "handling=strict"}
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"


def _create(tenant: Any, conditions: list[str] | None) -> str:
    body: dict[str, Any] = {"external_id": f"ext-{uuid.uuid4()}"}
    if conditions is not None:
        body["conditions"] = conditions
    resp = tenant.post("/v1/patients", body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def _codes(bundle: dict[str, Any]) -> set[str]:
    """The SNOMED CT code (or, without one, the text) of each Condition of a searchset."""
    out = set()
    for entry in bundle["entry"]:
        concept = entry["resource"]["code"]
        codings = [c["code"] for c in concept.get("coding", []) if c["system"] == SNOMED]
        out.add(codings[0] if codings else concept["text"])
    return out


def test_search_by_patient_and_subject(tenant: Any) -> None:
    pid = _create(
        tenant, ["depression", "personality_disorder", "hospice_or_palliative_care", "deceased"]
    )
    other = _create(tenant, ["bipolar_disorder"])
    by_patient = fhir_get(tenant, "Condition", patient=pid)  # checked by two FHIR R4 libraries
    # SNOMED CT: 35489007 Depressive disorder, 33449004 Personality disorder; hospice or
    # palliative care has no single concept (text only); deceased is no Condition.
    assert _codes(by_patient) == {"35489007", "33449004", "Hospice or palliative care"}
    for entry in by_patient["entry"]:
        resource = entry["resource"]
        assert resource["subject"] == {"reference": f"Patient/{pid}"}
        assert resource["code"]["text"]
        assert resource["clinicalStatus"]["coding"][0]["system"] == CLINICAL
        assert resource["clinicalStatus"]["coding"][0]["code"] == "active"
        assert resource["verificationStatus"]["coding"][0]["system"] == VERIFICATION
        assert resource["verificationStatus"]["coding"][0]["code"] == "confirmed"
        assert resource["category"][0]["coding"][0]["system"] == CATEGORY
        assert resource["category"][0]["coding"][0]["code"] == "problem-list-item"
        assert entry["fullUrl"].endswith(f"/Condition/{resource['id']}")
    by_subject = fhir_get(tenant, "Condition", subject=f"Patient/{pid}")
    assert [e["resource"] for e in by_subject["entry"]] == [
        e["resource"] for e in by_patient["entry"]
    ]
    assert _codes(fhir_get(tenant, "Condition", patient=other)) == {"13746004"}
    # a repeated parameter narrows: both patients at once is nobody
    resp = tenant.get("/fhir/R4/Condition", params=[("patient", pid), ("patient", other)])
    assert check(resp.json())["entry"] == []
    # code: SNOMED CT token, with or without its system
    assert _codes(fhir_get(tenant, "Condition", patient=pid, code=f"{SNOMED}|33449004")) == {
        "33449004"
    }
    assert fhir_get(tenant, "Condition", patient=pid, code="13746004")["entry"] == []
    assert (
        fhir_get(tenant, "Condition", patient=pid, code="http://loinc.org|33449004")["entry"] == []
    )


def test_read_by_id_and_not_across_organisations(tenant: Any, make_tenant: Any) -> None:
    pid = _create(tenant, ["dysthymia", "pervasive_developmental_disorder", "deceased"])
    bundle = fhir_get(tenant, "Condition", patient=pid)
    ids = sorted(e["resource"]["id"] for e in bundle["entry"])
    assert len(ids) == 2 and all(i.startswith(f"{pid}-") and len(i) <= 64 for i in ids)
    for condition_id in ids:
        resource = fhir_get(tenant, f"Condition/{condition_id}")
        assert resource["id"] == condition_id
        assert resource["subject"]["reference"] == f"Patient/{pid}"
    assert {fhir_get(tenant, f"Condition/{i}")["code"]["coding"][0]["code"] for i in ids} == {
        "78667006",  # Dysthymia
        "35919005",  # Pervasive developmental disorder
    }
    # by _id, and nothing else
    assert [e["resource"]["id"] for e in fhir_get(tenant, "Condition", _id=ids[0])["entry"]] == [
        ids[0]
    ]
    other = make_tenant()
    for path in (f"Condition/{ids[0]}", f"Condition/{pid}-deceased", f"Condition/{pid}-bipolar"):
        resp = (other if path == f"Condition/{ids[0]}" else tenant).get(f"/fhir/R4/{path}")
        assert resp.status_code == 404, (path, resp.text)
        assert resp.headers["content-type"].startswith(FHIR)
        assert check(resp.json())["issue"][0]["code"] == "not-found"
    assert check(other.get("/fhir/R4/Condition", params={"patient": pid}).json())["entry"] == []
    assert check(other.get("/fhir/R4/Condition", params={"_id": ids[0]}).json())["entry"] == []


def test_a_patient_token_reads_its_own_conditions_only(tenant: Any) -> None:
    own = _create(tenant, ["depression"])
    other = _create(tenant, ["depression"])
    headers = tenant.patient_token(own)
    get = tenant.client.get
    own_id = fhir_get(tenant, "Condition", patient=own)["entry"][0]["resource"]["id"]
    other_id = fhir_get(tenant, "Condition", patient=other)["entry"][0]["resource"]["id"]
    assert get(f"/fhir/R4/Condition/{own_id}", headers=headers).status_code == 200
    assert get(f"/fhir/R4/Condition/{other_id}", headers=headers).status_code == 404
    bundle = check(get("/fhir/R4/Condition", headers=headers).json())
    assert [e["resource"]["id"] for e in bundle["entry"]] == [own_id]
    assert get("/fhir/R4/Condition", params={"patient": other}, headers=headers).status_code == 404


def test_strict_mode_refuses_an_unknown_parameter(tenant: Any) -> None:
    pid = _create(tenant, ["depression"])
    resp = tenant.client.get(
        "/fhir/R4/Condition",
        params={"patient": pid, "clinical-status": "active"},
        headers=tenant.headers() | STRICT,
    )
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"].startswith(FHIR)
    issue = check(resp.json())["issue"][0]
    assert issue["code"] == "not-supported"
    assert issue["expression"] == ["clinical-status"]
    # lenient (the default): ignored and left out of the self link
    bundle = fhir_get(tenant, "Condition", patient=pid, **{"clinical-status": "active"})
    [self_link] = [link["url"] for link in bundle["link"] if link["relation"] == "self"]
    assert parse_qs(urlsplit(self_link).query) == {"patient": [pid]}
    assert len(bundle["entry"]) == 1


def test_a_patch_changes_the_conditions_served(tenant: Any) -> None:
    pid = _create(tenant, ["depression", "dysthymia"])
    assert _codes(fhir_get(tenant, "Condition", patient=pid)) == {"35489007", "78667006"}
    dysthymia = f"/fhir/R4/Condition/{pid}-dysthymia"
    assert tenant.get(dysthymia).status_code == 200
    path = f"/v1/patients/{pid}"
    etag = tenant.get(path).headers["ETag"]
    done = tenant.client.patch(
        path,
        json={"conditions": ["depression", "psychotic_disorder"]},
        headers=tenant.headers() | {"If-Match": etag},
    )
    assert done.status_code == 200, done.text
    # 69322001 Psychotic disorder
    assert _codes(fhir_get(tenant, "Condition", patient=pid)) == {"35489007", "69322001"}
    assert tenant.get(dysthymia).status_code == 404
    cleared = tenant.client.patch(
        path,
        json={"conditions": None},
        headers=tenant.headers() | {"If-Match": done.headers["ETag"]},
    )
    assert cleared.status_code == 200, cleared.text
    assert fhir_get(tenant, "Condition", patient=pid)["entry"] == []


def test_pages_follow_next_links(tenant: Any) -> None:
    pids = [_create(tenant, ["depression", "bipolar_disorder"]) for _ in range(2)]
    seen: list[str] = []
    params: dict[str, Any] = {"patient": ",".join(pids), "_count": "3"}
    bundle = fhir_get(tenant, "Condition", **params)
    seen += [e["resource"]["id"] for e in bundle["entry"]]
    [nxt] = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
    query = parse_qs(urlsplit(nxt).query)
    bundle = fhir_get(tenant, "Condition", **{k: v[0] for k, v in query.items()})
    seen += [e["resource"]["id"] for e in bundle["entry"]]
    assert not [link for link in bundle["link"] if link["relation"] == "next"]
    assert sorted(seen) == sorted(
        f"{p}-{slug}" for p in pids for slug in ("depression", "bipolar-disorder")
    )
