"""Flowsheet scores posted as Observations (clinical-rules.md section 6), their subjects named
by an EHR's own identifiers, and what is served back.

Every resource served is checked by fhirclient (strict, R4) and fhir.resources (R4B)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from kap_outcomes.auth.models import Role

from .conformance import check
from .forms import EHR_MRN, FREQ, us_core_phq9_item9, us_core_phq9_total

FHIR = "application/fhir+json"
OBS = "/fhir/R4/Observation"
LOINC = "http://loinc.org"
WHEN = "2026-03-02T15:00:00Z"


def post(tenant: Any, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    return tenant.client.post(
        path,
        json=body,
        headers={**tenant.headers(Role.integration), "Content-Type": FHIR, **(headers or {})},
    )


def mrn() -> str:
    return f"MRN{uuid.uuid4().hex[:10].upper()}"


def patient_with_mrn(tenant: Any, value: str, system: str = EHR_MRN) -> str:
    resp = tenant.post(
        "/v1/patients",
        {"external_id": f"ext-{uuid.uuid4()}", "identifiers": [{"system": system, "value": value}]},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def by_mrn(value: str, system: str | None = EHR_MRN) -> dict[str, Any]:
    identifier = {"value": value} if system is None else {"system": system, "value": value}
    return {"identifier": identifier}


def total(code: str, value: dict[str, Any], subject: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": subject,
        "effectiveDateTime": WHEN,
        **value,
    }


def v1(tenant: Any, observation_id: str) -> dict[str, Any]:
    resp = tenant.get(f"/v1/assessments/{observation_id.rpartition('-')[0]}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_the_us_core_example_with_an_ehr_mrn(tenant: Any) -> None:
    value = mrn()
    patient_id = patient_with_mrn(tenant, value)
    resp = post(tenant, OBS, us_core_phq9_total(by_mrn(value)))
    assert resp.status_code == 201, resp.text
    obs = check(resp.json())
    assert resp.headers["Location"].endswith(f"/Observation/{obs['id']}/_history/1")
    assert resp.headers["ETag"] == 'W/"1"'
    assert obs["subject"] == {"reference": f"Patient/{patient_id}"}
    assert obs["code"]["coding"][0]["code"] == "44261-6"
    assert obs["valueQuantity"]["value"] == 12  # "12" read as the number it is
    assert obs["interpretation"][0]["coding"][0]["code"] == "moderate"  # 10-14 [Kroenke01]
    assert "derivedFrom" not in obs  # no form of ours: nothing to derive from
    found = v1(tenant, obs["id"])
    assert (found["items"], found["total"], found["prorated"], found["source"]) == (
        None,
        12,
        False,
        "ehr",
    )
    assert found["flags"] == ["item9_unknown"]
    assert [(a["level"], a["kind"]) for a in found["alerts"]] == [("review", "safety_item_missing")]
    # served back: the same Observation by id and by search
    again = tenant.get(f"{OBS}/{obs['id']}")
    assert again.status_code == 200 and check(again.json()) == obs
    bundle = check(tenant.get(OBS, params={"patient": patient_id, "code": "44261-6"}).json())
    assert [e["resource"]["id"] for e in bundle["entry"]] == [obs["id"]]
    # no form: QuestionnaireResponse says so (404) and its search leaves it out
    qr = tenant.get(f"/fhir/R4/QuestionnaireResponse/{obs['id'].rpartition('-')[0]}")
    assert qr.status_code == 404 and check(qr.json())["issue"][0]["code"] == "not-found"
    forms = check(
        tenant.get("/fhir/R4/QuestionnaireResponse", params={"patient": patient_id}).json()
    )
    assert forms["entry"] == []


@pytest.mark.parametrize(
    "value",
    [
        {"valueInteger": 12},
        {"valueDecimal": 12.0},
        {
            "valueQuantity": {
                "value": 12,
                "unit": "{score}",
                "system": "http://unitsofmeasure.org",
                "code": "{score}",
            }
        },
        {"valueString": "12"},
        {"valueString": "12.00"},
    ],
)
def test_a_total_in_any_numeric_form(tenant: Any, value: dict[str, Any]) -> None:
    patient_id = tenant.patient()
    resp = post(tenant, OBS, total("44261-6", value, {"reference": f"Patient/{patient_id}"}))
    assert resp.status_code == 201, resp.text
    assert check(resp.json())["valueQuantity"]["value"] == 12


@pytest.mark.parametrize(
    ("code", "value", "where"),
    [
        ("44261-6", {"valueInteger": 28}, "Observation.valueInteger"),
        ("44261-6", {"valueInteger": -1}, "Observation.valueInteger"),
        ("70274-6", {"valueInteger": 22}, "Observation.valueInteger"),
        ("44261-6", {"valueDecimal": 12.5}, "Observation.valueDecimal"),
        ("44261-6", {"valueString": "12.5"}, "Observation.valueString"),
        ("44261-6", {"valueString": "twelve"}, "Observation.valueString"),
        ("44261-6", {"valueString": "1e1"}, "Observation.valueString"),
        ("44261-6", {"valueQuantity": {"value": 30}}, "Observation.valueQuantity.value"),
        ("44261-6", {"valueBoolean": True}, "Observation.valueBoolean"),
        ("44261-6", {}, "Observation"),
        ("44261-6", {"valueInteger": 12, "valueString": "12"}, "Observation"),
        ("93246-7", {"valueInteger": 1}, "Observation.code.coding"),  # C-SSRS: forms only
        ("8867-4", {"valueInteger": 60}, "Observation.code.coding"),  # a heart rate
    ],
)
def test_bad_totals_are_422_and_nothing_is_stored(
    tenant: Any, count_rows: Any, code: str, value: dict[str, Any], where: str
) -> None:
    patient_id = tenant.patient()
    resp = post(tenant, OBS, total(code, value, {"reference": f"Patient/{patient_id}"}))
    assert resp.status_code == 422, resp.text
    outcome = check(resp.json())
    assert outcome["issue"][0]["expression"] == [where]
    assert count_rows("assessments", tenant.org_id) == 0
    assert count_rows("alerts", tenant.org_id) == 0


def test_unknown_and_ambiguous_identifiers_are_422_without_the_value(
    tenant: Any, make_tenant: Any, count_rows: Any
) -> None:
    shared = mrn()
    patient_with_mrn(tenant, shared, EHR_MRN)
    patient_with_mrn(tenant, shared, "https://ehr.example.org/mrn")
    other = make_tenant()
    lonely = mrn()
    patient_with_mrn(other, lonely)  # another organisation's patient names nothing here
    for subject, code in [
        (by_mrn(mrn()), "not-found"),
        (by_mrn(lonely), "not-found"),
        (by_mrn(shared, None), "multiple-matches"),  # no system: two patients
        (by_mrn(shared, "https://other.example.org/id"), "not-found"),
    ]:
        resp = post(tenant, OBS, total("44261-6", {"valueInteger": 5}, subject))
        assert resp.status_code == 422, resp.text
        issue = check(resp.json())["issue"][0]
        assert issue["code"] == code
        assert issue["expression"] == ["Observation.subject.identifier"]
        value = subject["identifier"]["value"]
        assert value not in resp.text
    assert count_rows("assessments", tenant.org_id) == 0
    # with its system the shared value names one patient
    resp = post(tenant, OBS, total("44261-6", {"valueInteger": 5}, by_mrn(shared)))
    assert resp.status_code == 201, resp.text


def test_a_qr_subject_resolves_in_any_stored_system(tenant: Any) -> None:
    from .forms import us_core_phq9

    value = mrn()
    patient_id = patient_with_mrn(tenant, value, "https://ehr.example.org/mrn")
    form = us_core_phq9("unused", [1, 1, 1, 1, 1, 1, 1, 1, 0])
    form["subject"] = by_mrn(value, "https://ehr.example.org/mrn")
    resp = post(tenant, "/fhir/R4/QuestionnaireResponse", form)
    assert resp.status_code == 201, resp.text
    assert check(resp.json())["subject"]["reference"] == f"Patient/{patient_id}"


def test_item9_in_a_component_is_judged(tenant: Any) -> None:
    patient_id = tenant.patient()
    obs = total("44261-6", {"valueInteger": 16}, {"reference": f"Patient/{patient_id}"})
    obs["component"] = [
        {
            "code": {"coding": [{"system": LOINC, "code": "44260-8"}]},
            "valueCodeableConcept": {"coding": [{"system": LOINC, "code": FREQ[2]}]},
        }
    ]
    resp = post(tenant, OBS, obs)
    assert resp.status_code == 201, resp.text
    found = v1(tenant, resp.json()["id"])
    assert (found["total"], found["severity"], found["item9"], found["flags"]) == (
        16,
        "moderately_severe",
        2,
        [],
    )
    assert [(a["level"], a["kind"]) for a in found["alerts"]] == [("urgent", "phq9_item9")]
    item9 = tenant.get(f"{OBS}/{found['id']}-item9")
    assert item9.status_code == 200
    assert check(item9.json())["valueCodeableConcept"]["coding"][0]["code"] == FREQ[2]


def test_a_panel_with_contained_members(tenant: Any) -> None:
    patient_id = tenant.patient()
    subject = {"reference": f"Patient/{patient_id}"}
    panel = total("44249-1", {}, subject)
    panel["contained"] = [
        {**total("44261-6", {"valueInteger": 7}, subject), "id": "t"},
        {**us_core_phq9_item9(subject, FREQ[0]), "id": "i9"},
    ]
    panel["hasMember"] = [{"reference": "#t"}, {"reference": "#i9"}]
    resp = post(tenant, OBS, panel)
    assert resp.status_code == 201, resp.text
    found = v1(tenant, resp.json()["id"])
    assert (found["total"], found["severity"], found["item9"]) == (7, "mild", 0)
    assert found["flags"] == ["item9_negative"] and found["alerts"] == []


def test_a_panel_whose_members_are_elsewhere_is_refused(tenant: Any, count_rows: Any) -> None:
    patient_id = tenant.patient()
    panel = total("44249-1", {}, {"reference": f"Patient/{patient_id}"})
    panel["hasMember"] = [{"reference": "Observation/PHQ9-item-example-44261-6"}]
    resp = post(tenant, OBS, panel)
    assert resp.status_code == 422
    assert check(resp.json())["issue"][0]["expression"] == ["Observation.hasMember[0]"]
    assert count_rows("assessments", tenant.org_id) == 0


@pytest.mark.parametrize("key", ["component", "hasMember"])
def test_members_not_an_array_or_too_many_are_refused(
    tenant: Any, count_rows: Any, key: str
) -> None:
    subject = {"reference": f"Patient/{tenant.patient()}"}
    panel = total("44249-1", {}, subject)
    panel[key] = {"reference": "#t"}
    resp = post(tenant, OBS, panel)
    assert resp.status_code == 422, resp.text
    issue = check(resp.json())["issue"][0]
    assert (issue["code"], issue["expression"]) == ("structure", [f"Observation.{key}"])
    member = (
        {"reference": "#t"}
        if key == "hasMember"
        else {"code": {"coding": [{"system": LOINC, "code": "44261-6"}]}, "valueInteger": 7}
    )
    panel[key] = [member] * 65  # more than a panel of these instruments could ever hold
    resp = post(tenant, OBS, panel)
    assert resp.status_code == 422, resp.text
    issue = check(resp.json())["issue"][0]
    assert (issue["code"], issue["expression"]) == ("too-costly", ["Observation"])
    assert count_rows("assessments", tenant.org_id) == 0


def test_item9_alone_is_a_form_with_item9_only(tenant: Any) -> None:
    value = mrn()
    patient_with_mrn(tenant, value)
    resp = post(tenant, OBS, us_core_phq9_item9(by_mrn(value), FREQ[1]))
    assert resp.status_code == 201, resp.text
    obs = check(resp.json())
    assert obs["id"].endswith("-item9")
    found = v1(tenant, obs["id"])
    assert found["items"] == [None] * 8 + [1]
    assert (found["valid"], found["total"]) == (False, None)  # 8 items missing: no total
    assert [(a["level"], a["kind"]) for a in found["alerts"]] == [("review", "phq9_item9")]


def transaction(*observations: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": obs,
                "request": {"method": "POST", "url": "Observation"},
            }
            for obs in observations
        ],
    }


def test_a_transaction_with_the_total_and_item9_is_one_administration(tenant: Any) -> None:
    value = mrn()
    patient_id = patient_with_mrn(tenant, value)
    subject = by_mrn(value)
    bundle = transaction(us_core_phq9_total(subject), us_core_phq9_item9(subject, FREQ[3]))
    resp = post(tenant, "/fhir/R4", bundle)
    assert resp.status_code == 200, resp.text
    answer = check(resp.json())
    locations = [e["response"]["location"] for e in answer["entry"]]
    assert len(locations) == 2
    assert locations[0].endswith("-total/_history/1") and locations[1].endswith("-item9/_history/1")
    assert (
        locations[0].split("/")[1][: -len("-total")] == locations[1].split("/")[1][: -len("-item9")]
    )
    found = v1(tenant, locations[0].split("/")[1])
    assert (found["patient_id"], found["total"], found["item9"], found["flags"]) == (
        patient_id,
        12,
        3,
        [],
    )
    assert [(a["level"], a["kind"]) for a in found["alerts"]] == [("urgent", "phq9_item9")]


def test_a_transaction_of_two_times_is_two_administrations(tenant: Any) -> None:
    patient_id = tenant.patient()
    subject = {"reference": f"Patient/{patient_id}"}
    early = total("44261-6", {"valueInteger": 14}, subject)
    late = {
        **total("70274-6", {"valueInteger": 9}, subject),
        "effectiveDateTime": "2026-03-03T09:00:00Z",
    }
    resp = post(tenant, "/fhir/R4", transaction(early, late))
    assert resp.status_code == 200, resp.text
    ids = [e["response"]["location"].split("/")[1] for e in resp.json()["entry"]]
    phq9, gad7 = v1(tenant, ids[0]), v1(tenant, ids[1])
    assert (phq9["instrument"], phq9["severity"], phq9["flags"]) == (
        "phq9",
        "moderate",
        ["item9_unknown"],
    )
    assert (gad7["instrument"], gad7["severity"], gad7["alerts"]) == ("gad7", "mild", [])


def test_a_transaction_with_one_bad_entry_stores_nothing(tenant: Any, count_rows: Any) -> None:
    patient_id = tenant.patient()
    subject = {"reference": f"Patient/{patient_id}"}
    good = total("44261-6", {"valueInteger": 14}, subject)
    bad = {
        **total("70274-6", {"valueInteger": 30}, subject),
        "effectiveDateTime": "2026-03-03T09:00:00Z",
    }
    resp = post(tenant, "/fhir/R4", transaction(good, bad))
    assert resp.status_code == 422
    assert check(resp.json())["issue"][0]["expression"] == ["Bundle.entry[1].resource.valueInteger"]
    twice = transaction(good, copy.deepcopy(good))  # one administration, its total twice
    resp = post(tenant, "/fhir/R4", twice)
    assert resp.status_code == 422
    assert check(resp.json())["issue"][0]["code"] == "structure"
    assert count_rows("assessments", tenant.org_id) == 0


def test_conditional_create_and_idempotency(tenant: Any, count_rows: Any) -> None:
    patient_id = tenant.patient()
    obs = total("70274-6", {"valueInteger": 11}, {"reference": f"Patient/{patient_id}"})
    obs["identifier"] = [{"system": "https://ehr.example.org/flowsheet", "value": "row-1"}]
    condition = {"If-None-Exist": "identifier=https://ehr.example.org/flowsheet|row-1"}
    first = post(tenant, OBS, obs, condition)
    assert first.status_code == 201, first.text
    again = post(tenant, OBS, obs, condition)
    assert again.status_code == 200, again.text
    assert check(again.json())["id"] == first.json()["id"]
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    other = total("70274-6", {"valueInteger": 3}, {"reference": f"Patient/{patient_id}"})
    one = post(tenant, OBS, other, key)
    two = post(tenant, OBS, other, key)
    assert (one.status_code, two.status_code) == (201, 201)
    assert two.headers["Idempotent-Replayed"] == "true"
    assert two.json()["id"] == one.json()["id"]
    assert count_rows("assessments", tenant.org_id) == 2


def test_patient_shows_and_finds_every_identifier(tenant: Any) -> None:
    value, second = mrn(), mrn()
    resp = tenant.post(
        "/v1/patients",
        {
            "external_id": f"ext-{uuid.uuid4()}",
            "identifiers": [
                {"system": EHR_MRN, "value": value},
                {"system": "https://ehr.example.org/mrn", "value": second},
            ],
        },
    )
    patient_id = resp.json()["id"]
    patient = check(tenant.get(f"/fhir/R4/Patient/{patient_id}").json())
    assert patient["identifier"][1:] == [  # by system: https… before urn…
        {"system": "https://ehr.example.org/mrn", "value": second},
        {"system": EHR_MRN, "value": value},
    ]
    for query in (f"{EHR_MRN}|{value}", value, f"https://ehr.example.org/mrn|{second}"):
        bundle = check(tenant.get("/fhir/R4/Patient", params={"identifier": query}).json())
        assert [e["resource"]["id"] for e in bundle["entry"]] == [patient_id]
        # identifier values are PHI: never in a link we generate
        assert all(
            value not in link["url"] and second not in link["url"] for link in bundle["link"]
        )
    wrong_system = check(
        tenant.get(
            "/fhir/R4/Patient", params={"identifier": f"https://ehr.example.org/mrn|{value}"}
        ).json()
    )
    assert wrong_system["entry"] == []


def test_a_form_conditional_on_a_score_identifier_is_a_conflict(
    tenant: Any, count_rows: Any
) -> None:
    from .forms import us_core_phq9

    patient_id = tenant.patient()
    obs = total("44261-6", {"valueInteger": 9}, {"reference": f"Patient/{patient_id}"})
    obs["identifier"] = [{"system": "https://ehr.example.org/flowsheet", "value": "row-9"}]
    assert post(tenant, OBS, obs).status_code == 201
    form = us_core_phq9(patient_id, [1, 1, 1, 1, 1, 1, 1, 1, 0])
    resp = post(
        tenant,
        "/fhir/R4/QuestionnaireResponse",
        form,
        {"If-None-Exist": "identifier=https://ehr.example.org/flowsheet|row-9"},
    )
    assert resp.status_code == 409, resp.text
    assert check(resp.json())["issue"][0]["code"] == "conflict"
    assert count_rows("assessments", tenant.org_id) == 1
