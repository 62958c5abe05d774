"""Ingest of forms others wrote, conditional create, and the round trip with /v1."""

from __future__ import annotations

import uuid
from typing import Any

from kap_outcomes.auth.models import Role

from .conformance import check
from .forms import bare_phq9, loinc_gad7, us_core_phq9

FHIR = "application/fhir+json"
QR = "/fhir/R4/QuestionnaireResponse"


def post(tenant: Any, form: Any, headers: dict[str, str] | None = None, **kw: Any) -> Any:
    return tenant.client.post(
        QR,
        json=form,
        headers={**tenant.headers(Role.integration), "Content-Type": FHIR, **(headers or {})},
        **kw,
    )


def v1_assessment(tenant: Any, assessment_id: str) -> dict[str, Any]:
    resp = tenant.get(f"/v1/assessments/{assessment_id}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_us_core_form_with_decimal_total_is_scored_like_v1(tenant: Any) -> None:
    patient_id = tenant.patient()
    resp = post(tenant, us_core_phq9(patient_id, [2, 2, 1, 1, 1, 1, 1, 1, 0], total=10.0))
    assert resp.status_code == 201, resp.text
    assert resp.headers["content-type"].startswith(FHIR)
    qr = check(resp.json())
    assert qr["status"] == "completed"
    assert resp.headers["Location"].endswith(f"/QuestionnaireResponse/{qr['id']}/_history/1")
    # Read back over /v1: the same assessment, same score, source ehr.
    found = v1_assessment(tenant, qr["id"])
    assert found["instrument"] == "phq9"
    assert found["total"] == 10
    assert found["severity"] == "moderate"
    assert found["source"] == "ehr"
    # Item 9 answered 0: the safety rule still runs (no alert, not "no risk").
    assert found["alerts"] == []


def test_loinc_style_gad7_with_item_code_and_more_days_than_not(tenant: Any) -> None:
    external_id = f"mrn-{uuid.uuid4().hex[:8]}"
    patient_id = tenant.patient(external_id)
    subject = {
        "identifier": {
            "system": "https://kap-outcomes.dev/fhir/sid/external-id",
            "value": external_id,
        }
    }
    resp = post(tenant, loinc_gad7(subject, [1, 2, 2, 1, 1, 1, 0], total=8))
    assert resp.status_code == 201, resp.text
    qr = check(resp.json())
    assert qr["subject"]["reference"] == f"Patient/{patient_id}"
    found = v1_assessment(tenant, qr["id"])
    assert found["items"] == [1, 2, 2, 1, 1, 1, 0]
    assert found["total"] == 8


def test_bare_code_linkids_with_weights_and_string_total(tenant: Any) -> None:
    patient_id = tenant.patient()
    resp = post(tenant, bare_phq9(patient_id, [3, 3, 3, 3, 3, 3, 3, 3, 2], total="26"))
    assert resp.status_code == 201, resp.text
    found = v1_assessment(tenant, resp.json()["id"])
    assert found["total"] == 26
    assert found["severity"] == "severe"
    # Item 9 = 2: the urgent safety alert opened in the same transaction, as on /v1.
    assert [a["level"] for a in found["alerts"]] == ["urgent"]


def test_wrong_total_is_a_business_rule_outcome(tenant: Any, count_rows: Any) -> None:
    patient_id = tenant.patient()
    resp = post(tenant, us_core_phq9(patient_id, [1] * 9, total=12))
    assert resp.status_code == 422
    outcome = check(resp.json())
    assert outcome["issue"][0]["code"] == "business-rule"
    assert count_rows("assessments", tenant.org_id) == 0


def test_unknown_answer_code_is_invalid(tenant: Any) -> None:
    patient_id = tenant.patient()
    form = us_core_phq9(patient_id, [1] * 9)
    form["item"][3]["answer"] = [
        {"valueCoding": {"system": "http://loinc.org", "code": "LA0000-0"}}
    ]
    resp = post(tenant, form)
    assert resp.status_code == 422
    outcome = check(resp.json())
    assert outcome["issue"][0]["code"] == "code-invalid"
    assert "item[3]" in outcome["issue"][0]["expression"][0]


def test_missing_items_are_prorated_or_invalid_per_the_rules(tenant: Any) -> None:
    patient_id = tenant.patient()
    one_missing = us_core_phq9(patient_id, [2, 2, 2, 2, None, 2, 2, 2, 0])
    del one_missing["item"][4]  # the item is absent altogether
    resp = post(tenant, one_missing)
    assert resp.status_code == 201, resp.text
    found = v1_assessment(tenant, resp.json()["id"])
    assert found["prorated"] is True
    assert found["total"] == 16  # 14 x 9 / 8 = 15.75, half-up
    three_missing = us_core_phq9(patient_id, [2, None, None, None, 2, 2, 2, 2, 0])
    resp = post(tenant, three_missing)
    assert resp.status_code == 201, resp.text
    found = v1_assessment(tenant, resp.json()["id"])
    assert found["valid"] is False
    assert found["total"] is None


def test_unknown_patient_is_an_outcome(tenant: Any, make_tenant: Any) -> None:
    resp = post(tenant, us_core_phq9(str(uuid.uuid4()), [0] * 9))
    assert resp.status_code == 422
    assert check(resp.json())["issue"][0]["code"] == "not-found"
    other = make_tenant()
    foreign = other.patient()  # another organisation's patient does not exist here
    resp = post(tenant, us_core_phq9(foreign, [0] * 9))
    assert resp.status_code == 422


def test_if_none_exist_makes_a_retry_safe(tenant: Any, count_rows: Any) -> None:
    patient_id = tenant.patient()
    form = us_core_phq9(patient_id, [1] * 9, total=9)
    form["identifier"] = {"system": "urn:ehr:forms", "value": "form-1"}
    condition = {"If-None-Exist": "identifier=urn:ehr:forms|form-1"}
    first = post(tenant, form, condition)
    assert first.status_code == 201, first.text
    again = post(tenant, form, condition)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["identifier"] == {"system": "urn:ehr:forms", "value": "form-1"}
    assert count_rows("assessments", tenant.org_id) == 1
    # Several matches (two forms stored under one identifier without a condition) → 412.
    assert post(tenant, form).status_code == 201
    conflict = post(tenant, form, condition)
    assert conflict.status_code == 412
    assert check(conflict.json())["issue"][0]["code"] == "duplicate"


def test_idempotency_key_replays(tenant: Any, count_rows: Any) -> None:
    patient_id = tenant.patient()
    form = us_core_phq9(patient_id, [0] * 9)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = post(tenant, form, key)
    second = post(tenant, form, key)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert count_rows("assessments", tenant.org_id) == 1


def test_bad_bodies_are_outcomes_never_problems(tenant: Any) -> None:
    cases = [
        (b"{", 400, "structure"),
        (b"[]", 400, "structure"),
        (b'{"resourceType": "Patient"}', 422, "structure"),
        (
            b'{"resourceType": "QuestionnaireResponse", "status": "in-progress"}',
            422,
            "business-rule",
        ),
        (b'{"resourceType": "QuestionnaireResponse", "status": "completed"}', 422, "required"),
    ]
    for body, status, code in cases:
        resp = tenant.client.post(
            QR, content=body, headers={**tenant.headers(), "Content-Type": FHIR}
        )
        assert resp.status_code == status, (body, resp.text)
        assert resp.headers["content-type"].startswith(FHIR)
        assert check(resp.json())["issue"][0]["code"] == code
    future = us_core_phq9(tenant.patient(), [0] * 9)
    future["authored"] = "2999-01-01T00:00:00Z"
    resp = post(tenant, future)
    assert resp.status_code == 422
    assert check(resp.json())["issue"][0]["code"] == "value"


def test_patient_token_submits_only_for_itself(tenant: Any) -> None:
    own, other = tenant.patient(), tenant.patient()
    headers = {**tenant.patient_token(own), "Content-Type": FHIR}
    resp = tenant.client.post(QR, json=us_core_phq9(own, [0] * 9), headers=headers)
    assert resp.status_code == 201, resp.text
    resp = tenant.client.post(QR, json=us_core_phq9(other, [0] * 9), headers=headers)
    assert resp.status_code == 422


def test_v1_score_is_found_as_an_observation(tenant: Any) -> None:
    patient_id = tenant.patient()
    resp = tenant.post(
        f"/v1/patients/{patient_id}/assessments",
        {
            "instrument": "gad7",
            "items": [3, 3, 3, 3, 3, 0, 0],
            "administered_at": "2026-03-01T10:00:00Z",
        },
    )
    assert resp.status_code == 201, resp.text
    bundle = tenant.get(
        "/fhir/R4/Observation",
        params={"patient": f"Patient/{patient_id}", "code": "http://loinc.org|70274-6"},
    ).json()
    check(bundle)
    [entry] = bundle["entry"]
    assert entry["resource"]["valueQuantity"]["value"] == 15
    assert entry["resource"]["interpretation"][0]["coding"][0]["code"] == "severe"
    assert entry["resource"]["derivedFrom"] == [
        {"reference": f"QuestionnaireResponse/{resp.json()['id']}"}
    ]
