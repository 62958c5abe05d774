"""The read side: metadata, Questionnaires, Patients, QuestionnaireResponses, Observations,
searches and paging, statuses of corrected forms, and errors as OperationOutcomes."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kap_outcomes.auth.models import Role

from .conformance import check

FHIR = "application/fhir+json"
EXT = "https://kap-outcomes.dev/fhir/sid/external-id"


def submit(tenant: Any, patient_id: str, instrument: str, items: list[Any], at: str) -> str:
    resp = tenant.post(
        f"/v1/patients/{patient_id}/assessments",
        {"instrument": instrument, "items": items, "administered_at": at},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def fhir_get(tenant: Any, path: str, **params: Any) -> dict[str, Any]:
    resp = tenant.get(f"/fhir/R4/{path}", params=params)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith(FHIR)
    return check(resp.json())


def test_metadata_needs_no_token_and_lists_what_is_supported(client: Any) -> None:
    resp = client.get("/fhir/R4/metadata")
    assert resp.status_code == 200
    cs = check(resp.json())
    types = {r["type"]: r for r in cs["rest"][0]["resource"]}
    assert set(types) == {
        "Questionnaire",
        "QuestionnaireResponse",
        "Observation",
        "Patient",
        "Condition",
        "Group",
    }
    # Bulk Data: $export at system, Patient and Group level
    bulk = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/"
    assert [o["definition"] for o in cs["rest"][0]["operation"]] == [f"{bulk}export"]
    assert [o["definition"] for o in types["Patient"]["operation"]] == [f"{bulk}patient-export"]
    assert [o["definition"] for o in types["Group"]["operation"]] == [f"{bulk}group-export"]
    assert {i["code"] for i in types["QuestionnaireResponse"]["interaction"]} == {
        "read",
        "search-type",
        "create",
    }
    assert types["QuestionnaireResponse"]["conditionalCreate"] is True
    assert {p["name"] for p in types["Observation"]["searchParam"]} == {
        "patient",
        "subject",
        "_id",
        "code",
        "category",
        "date",
        "_lastUpdated",
        "_count",
    }


def test_questionnaires_are_loinc_coded_and_weighted(tenant: Any) -> None:
    bundle = fhir_get(
        tenant, "Questionnaire", url="https://kap-outcomes.dev/fhir/Questionnaire/gad-7|1.0.0"
    )
    [entry] = bundle["entry"]
    gad7 = entry["resource"]
    assert gad7["code"][0] == {"system": "http://loinc.org", "code": "69737-5"}
    item2 = gad7["item"][1]
    assert item2["code"][0]["code"] == "68509-9"
    weights = [{e["url"]: e["valueDecimal"] for e in o["extension"]} for o in item2["answerOption"]]
    item_weight = "http://hl7.org/fhir/StructureDefinition/itemWeight"
    ordinal_value = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
    assert weights == [{item_weight: w, ordinal_value: w} for w in range(4)]
    assert fhir_get(tenant, "Questionnaire/phq-9")["code"][0]["code"] == "44249-1"
    cssrs = fhir_get(tenant, "Questionnaire/cssrs-screener")
    assert [i["code"][0]["code"] for i in cssrs["item"]][:2] == ["93246-7", "93247-5"]
    assert len(fhir_get(tenant, "Questionnaire")["entry"]) == 3
    assert fhir_get(tenant, "Questionnaire", url="http://example.org/other").get("entry") == []
    resp = tenant.get("/fhir/R4/Questionnaire/nope")
    assert resp.status_code == 404
    assert check(resp.json())["issue"][0]["code"] == "not-found"


def test_patient_read_and_search_by_identifier(tenant: Any, make_tenant: Any) -> None:
    external_id = f"mrn-{uuid.uuid4().hex[:8]}"
    patient_id = tenant.patient(external_id)
    patient = fhir_get(tenant, f"Patient/{patient_id}")
    assert patient["identifier"] == [{"system": EXT, "value": external_id}]
    bundle = fhir_get(tenant, "Patient", identifier=f"{EXT}|{external_id}")
    assert [e["resource"]["id"] for e in bundle["entry"]] == [patient_id]
    assert fhir_get(tenant, "Patient", identifier=f"urn:other|{external_id}")["entry"] == []
    # Another organisation: 404, as if it did not exist.
    other = make_tenant()
    resp = other.get(f"/fhir/R4/Patient/{patient_id}")
    assert resp.status_code == 404
    assert check(resp.json())["issue"][0]["code"] == "not-found"
    assert (
        check(other.get("/fhir/R4/Patient", params={"identifier": external_id}).json())["entry"]
        == []
    )


def test_observations_derived_from_a_phq9(tenant: Any) -> None:
    patient_id = tenant.patient()
    assessment_id = submit(
        tenant, patient_id, "phq9", [2, 2, 2, 2, 1, 1, 1, 1, 1], "2026-03-02T09:00:00Z"
    )
    total = fhir_get(tenant, f"Observation/{assessment_id}-total")
    assert total["code"]["coding"][0]["code"] == "44261-6"
    assert total["valueQuantity"]["value"] == 13
    assert total["interpretation"][0]["coding"][0]["code"] == "moderate"
    item9 = fhir_get(tenant, f"Observation/{assessment_id}-item9")
    assert item9["code"]["coding"][0]["code"] == "44260-8"
    assert item9["valueCodeableConcept"]["coding"][0]["code"] == "LA6569-3"
    qr = fhir_get(tenant, f"QuestionnaireResponse/{assessment_id}")
    assert qr["status"] == "completed"
    assert qr["authored"] == "2026-03-02T09:00:00Z"
    assert tenant.get(f"/fhir/R4/Observation/{assessment_id}-q1").status_code == 404


def test_cssrs_items_are_observations(tenant: Any) -> None:
    patient_id = tenant.patient()
    assessment_id = submit(
        tenant, patient_id, "cssrs", [1, 0, None, None, None, 0, None], "2026-03-02T09:00:00Z"
    )
    bundle = fhir_get(tenant, "Observation", patient=patient_id, category="survey")
    ids = [e["resource"]["id"] for e in bundle["entry"]]
    assert ids == [f"{assessment_id}-{q}" for q in ("q1", "q2", "q3", "q4", "q5", "q6", "q6b")]
    q1 = bundle["entry"][0]["resource"]
    assert q1["valueCodeableConcept"]["coding"][0]["code"] == "LA33-6"
    q3 = bundle["entry"][2]["resource"]
    assert q3["dataAbsentReason"]["coding"][0]["code"] == "not-asked"


def test_observation_search_pages_with_next_links_and_dates(tenant: Any) -> None:
    patient_id = tenant.patient()
    days = [f"2026-01-{d:02d}T12:00:00Z" for d in range(1, 8)]
    for day in days:
        submit(tenant, patient_id, "phq9", [1] * 9, day)
    seen: list[str] = []
    params: dict[str, Any] = {"patient": f"Patient/{patient_id}", "_count": 3}
    while True:
        bundle = fhir_get(tenant, "Observation", **params)
        seen += [e["resource"]["id"] for e in bundle["entry"]]
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not nxt:
            break
        params = {k: v[-1] for k, v in parse_qs(urlsplit(nxt[0]).query).items()}
    assert len(seen) == len(set(seen)) == 14  # a total and item 9 per PHQ-9
    totals = fhir_get(
        tenant,
        "Observation",
        patient=patient_id,
        code="44261-6",
        date=["ge2026-01-03", "lt2026-01-05"],
    )
    assert [e["resource"]["effectiveDateTime"][:10] for e in totals["entry"]] == [
        "2026-01-04",
        "2026-01-03",
    ]
    gt = fhir_get(tenant, "Observation", patient=patient_id, code="44261-6", date="gt2026-01-06")
    assert len(gt["entry"]) == 1
    le = fhir_get(tenant, "Observation", patient=patient_id, code="44261-6", date="le2026-01-01")
    assert len(le["entry"]) == 1
    none = fhir_get(tenant, "Observation", patient=patient_id, category="laboratory")
    assert none["entry"] == []
    updated = fhir_get(tenant, "Observation", patient=patient_id, _lastUpdated="ge2020-01-01")
    assert len(updated["entry"]) == 14
    qrs = fhir_get(
        tenant,
        "QuestionnaireResponse",
        patient=patient_id,
        authored="2026-01-02",
        questionnaire="https://kap-outcomes.dev/fhir/Questionnaire/phq-9",
    )
    assert len(qrs["entry"]) == 1


def test_amended_and_retracted_forms_carry_their_status(tenant: Any) -> None:
    patient_id = tenant.patient()
    amended = submit(tenant, patient_id, "gad7", [1] * 7, "2026-02-01T10:00:00Z")
    retracted = submit(tenant, patient_id, "gad7", [2] * 7, "2026-02-02T10:00:00Z")
    resp = tenant.client.post(
        f"/v1/assessments/{amended}/amend",
        json={"items": [2] * 7, "reason": "typo"},
        headers={**tenant.headers(), "If-Match": '"1"'},
    )
    assert resp.status_code == 200, resp.text
    resp = tenant.client.post(
        f"/v1/assessments/{retracted}/retract",
        json={"reason": "wrong patient"},
        headers={**tenant.headers(), "If-Match": '"1"'},
    )
    assert resp.status_code == 200, resp.text
    qr = fhir_get(tenant, f"QuestionnaireResponse/{amended}")
    assert qr["status"] == "amended"
    assert qr["meta"]["versionId"] == "2"
    obs = fhir_get(tenant, f"Observation/{amended}-total")
    assert obs["status"] == "amended"
    assert obs["valueQuantity"]["value"] == 14
    assert fhir_get(tenant, f"QuestionnaireResponse/{retracted}")["status"] == "entered-in-error"
    assert fhir_get(tenant, f"Observation/{retracted}-total")["status"] == "entered-in-error"


def test_patient_token_sees_only_its_own(tenant: Any) -> None:
    own, other = tenant.patient(), tenant.patient()
    own_id = submit(tenant, own, "gad7", [0] * 7, "2026-02-01T10:00:00Z")
    other_id = submit(tenant, other, "gad7", [0] * 7, "2026-02-01T10:00:00Z")
    headers = tenant.patient_token(own)
    assert (
        tenant.client.get(f"/fhir/R4/QuestionnaireResponse/{own_id}", headers=headers).status_code
        == 200
    )
    assert (
        tenant.client.get(f"/fhir/R4/QuestionnaireResponse/{other_id}", headers=headers).status_code
        == 404
    )
    assert tenant.client.get(f"/fhir/R4/Patient/{other}", headers=headers).status_code == 404
    bundle = tenant.client.get("/fhir/R4/Observation", headers=headers).json()
    assert [e["resource"]["subject"]["reference"] for e in bundle["entry"]] == [f"Patient/{own}"]
    resp = tenant.client.get("/fhir/R4/Observation", params={"patient": other}, headers=headers)
    assert resp.status_code == 404


def test_errors_are_operation_outcomes(client: Any, tenant: Any) -> None:
    cases = [
        (client.get("/fhir/R4/Observation"), 401, "login"),
        (
            client.get("/fhir/R4/Observation", headers={"Authorization": "Bearer nope"}),
            401,
            "login",
        ),
        (tenant.get("/fhir/R4/Observation", params={"_count": "0"}), 400, "value"),
        (tenant.get("/fhir/R4/Observation", params={"date": "ge2026-13"}), 400, "value"),
        (tenant.get("/fhir/R4/Observation", params={"_cursor": "garbage"}), 400, "value"),
        (tenant.get("/fhir/R4/Observation/not-a-uuid-total"), 404, "not-found"),
        (tenant.get("/fhir/R4/Nothing"), 404, "not-found"),
        (tenant.get("/fhir/R4/Patient"), 400, "required"),
        (
            client.post(
                "/fhir/R4/QuestionnaireResponse",
                content=b"<xml/>",
                headers={**tenant.headers(), "Content-Type": "application/fhir+xml"},
            ),
            415,
            "not-supported",
        ),
    ]
    for resp, status, code in cases:
        assert resp.status_code == status, resp.text
        assert resp.headers["content-type"].startswith(FHIR)
        assert check(resp.json())["issue"][0]["code"] == code
    assert cases[0][0].headers["WWW-Authenticate"].startswith("Bearer")


def test_v1_still_answers_problems(tenant: Any) -> None:
    resp = tenant.get("/v1/patients/nope-nope")
    assert resp.headers["content-type"].startswith("application/problem+json")


def test_integration_role_reads(tenant: Any) -> None:
    patient_id = tenant.patient()
    resp = tenant.get(f"/fhir/R4/Patient/{patient_id}", role=Role.integration)
    assert resp.status_code == 200
