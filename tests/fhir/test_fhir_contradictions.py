"""Forms that contradict themselves, and numbers outside the grammar, ingested over FHIR.

clinical-rules.md section 6: a form that contradicts itself is refused with a 422 naming the
item, never resolved by position or order, and a safety answer is never stored without its
alert. Each case below puts PHQ-9 item 9 (44260-8) = 3, the answer that opens an urgent alert,
where a first-wins or last-wins reading would lose it, and checks that nothing was stored.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from kap_outcomes.auth.models import Role

from .conformance import check

FHIR = "application/fhir+json"
QR = "/fhir/R4/QuestionnaireResponse"
LOINC = "http://loinc.org"
PHQ9 = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3"]
ITEM9 = "44260-8"
GAD7_ITEM1 = "69725-0"
NEVER = "LA6568-5"  # "Not at all", weight 0 (LOINC LL358-3)
NEARLY_EVERY_DAY = "LA6571-9"  # weight 3
ITEM_WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"


def _item(code: str, value: int) -> dict[str, Any]:
    return {"linkId": code, "answer": [{"valueInteger": value}]}


def phq9(patient_id: str, item9: int = 3, canonical: str | None = None) -> dict[str, Any]:
    form: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authored": "2026-03-02T15:00:00Z",
        "item": [_item(code, 0) for code in PHQ9] + [_item(ITEM9, item9)],
    }
    if canonical is not None:
        form["questionnaire"] = canonical
    return form


def _post(tenant: Any, body: bytes) -> Any:
    return tenant.client.post(
        QR, content=body, headers={**tenant.headers(Role.integration), "Content-Type": FHIR}
    )


def _refused(tenant: Any, count_rows: Any, body: bytes) -> dict[str, Any]:
    """422, an OperationOutcome, and nothing stored: no assessment, so no safety answer
    without its alert."""
    resp = _post(tenant, body)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith(FHIR)
    issue: dict[str, Any] = check(resp.json())["issue"][0]
    assert count_rows("assessments", tenant.org_id) == 0
    assert count_rows("alerts", tenant.org_id) == 0
    return issue


@pytest.fixture
def patient(tenant: Any) -> str:
    return str(tenant.patient())


# --- an item answered twice -----------------------------------------------------------------


def _with(form: dict[str, Any], *items: dict[str, Any], first: bool = True) -> bytes:
    form = copy.deepcopy(form)
    form["item"] = [*items, *form["item"]] if first else [*form["item"], *items]
    return orjson.dumps(form)


@pytest.mark.parametrize("first", [True, False], ids=["decoy-first", "decoy-last"])
def test_item_9_answered_twice_by_linkid_is_refused(tenant, patient, count_rows, first):
    body = _with(phq9(patient), _item(ITEM9, 0), first=first)
    issue = _refused(tenant, count_rows, body)
    assert issue["expression"] == ["QuestionnaireResponse.item[9]"]
    assert ITEM9 in issue["diagnostics"]


def test_item_9_answered_twice_by_code_and_by_linkid_is_refused(tenant, patient, count_rows):
    coded = {
        "linkId": "q9",
        "code": [{"system": LOINC, "code": ITEM9}],
        "answer": [{"valueInteger": 0}],
    }
    issue = _refused(tenant, count_rows, _with(phq9(patient), coded))
    assert issue["expression"] == ["QuestionnaireResponse.item[9]"]
    assert ITEM9 in issue["diagnostics"]


def test_item_9_answered_again_in_a_nested_group_is_refused(tenant, patient, count_rows):
    group = {"linkId": "group", "item": [{"linkId": "inner", "item": [_item(ITEM9, 0)]}]}
    issue = _refused(tenant, count_rows, _with(phq9(patient), group, first=False))
    assert issue["expression"] == ["QuestionnaireResponse.item[9].item[0].item[0]"]


def test_item_9_answered_again_under_an_answer_is_refused(tenant, patient, count_rows):
    form = phq9(patient)
    form["item"][0]["answer"][0]["item"] = [_item(ITEM9, 0)]
    issue = _refused(tenant, count_rows, orjson.dumps(form))
    assert issue["expression"] == ["QuestionnaireResponse.item[8]"]
    assert ITEM9 in issue["diagnostics"]


def test_two_answers_to_the_total_are_refused(tenant, patient, count_rows):
    total = {"linkId": "44261-6", "answer": [{"valueInteger": 3}, {"valueInteger": 0}]}
    issue = _refused(tenant, count_rows, _with(phq9(patient), total, first=False))
    assert issue["expression"] == ["QuestionnaireResponse.item[9].answer"]


def test_two_answers_to_item_9_are_refused(tenant, patient, count_rows):
    form = phq9(patient)
    form["item"][8]["answer"] = [{"valueInteger": 3}, {"valueInteger": 0}]
    issue = _refused(tenant, count_rows, orjson.dumps(form))
    assert issue["expression"] == ["QuestionnaireResponse.item[8].answer"]


def test_an_answer_with_two_values_is_refused(tenant, patient, count_rows):
    form = phq9(patient)
    form["item"][8]["answer"] = [
        {"valueInteger": 0, "valueCoding": {"system": LOINC, "code": NEARLY_EVERY_DAY}}
    ]
    issue = _refused(tenant, count_rows, orjson.dumps(form))
    assert issue["expression"] == ["QuestionnaireResponse.item[8].answer[0]"]


def test_a_coding_whose_code_and_weight_disagree_is_refused(tenant, patient, count_rows):
    form = phq9(patient)
    form["item"][8]["answer"] = [
        {
            "valueCoding": {
                "system": LOINC,
                "code": NEVER,
                "extension": [{"url": ITEM_WEIGHT, "valueDecimal": 3}],
            }
        }
    ]
    issue = _refused(tenant, count_rows, orjson.dumps(form))
    assert issue["expression"] == ["QuestionnaireResponse.item[8].answer[0].valueCoding"]


# --- items of one instrument under another's form ------------------------------------------


@pytest.mark.parametrize(
    "canonical",
    [
        "https://kap-outcomes.dev/fhir/Questionnaire/gad-7",
        "https://kap-outcomes.dev/fhir/Questionnaire/gad-7|1.0.0",
        "http://loinc.org/q/69737-5",
        "https://kap-outcomes.dev/fhir/Questionnaire/cssrs-screener",
    ],
)
def test_phq9_answers_under_another_instruments_canonical_are_refused(
    tenant, patient, count_rows, canonical
):
    issue = _refused(tenant, count_rows, orjson.dumps(phq9(patient, canonical=canonical)))
    assert issue["expression"] == ["QuestionnaireResponse.item[0]"]
    assert PHQ9[0] in issue["diagnostics"]


def test_a_gad7_item_inside_a_phq9_form_is_refused(tenant, patient, count_rows):
    issue = _refused(tenant, count_rows, _with(phq9(patient), _item(GAD7_ITEM1, 2), first=False))
    assert issue["expression"] == ["QuestionnaireResponse.item[9]"]
    assert GAD7_ITEM1 in issue["diagnostics"]


def test_an_answer_the_service_cannot_place_is_refused(tenant, patient, count_rows):
    unknown = {"linkId": "q10", "answer": [{"valueInteger": 2}]}
    issue = _refused(tenant, count_rows, _with(phq9(patient), unknown, first=False))
    assert issue["expression"] == ["QuestionnaireResponse.item[9]"]


def test_an_unknown_canonical_is_identified_by_its_items(tenant, patient, count_rows):
    form = phq9(patient, canonical="https://forms.example.org/Questionnaire/mood-check|7")
    resp = _post(tenant, orjson.dumps(form))
    assert resp.status_code == 201, resp.text
    found = tenant.get(f"/v1/assessments/{resp.json()['id']}").json()
    assert found["instrument"] == "phq9"
    assert found["items"][8] == 3
    assert [a["level"] for a in found["alerts"]] == ["urgent"]


def test_unanswered_items_of_other_forms_and_display_items_pass(tenant, patient):
    form = phq9(patient, canonical="https://kap-outcomes.dev/fhir/Questionnaire/phq-9")
    form["item"].append({"linkId": "note", "text": "Thank you"})
    resp = _post(tenant, orjson.dumps(form))
    assert resp.status_code == 201, resp.text


# --- duplicate keys in the body -------------------------------------------------------------


def _body_with_item9(patient_id: str, answer: bytes) -> bytes:
    form = phq9(patient_id)
    text = orjson.dumps(form)
    marker = b'{"linkId":"44260-8","answer":[{"valueInteger":3}]}'
    assert marker in text
    return text.replace(marker, b'{"linkId":"44260-8","answer":[' + answer + b"]}")


def test_a_repeated_value_key_in_an_answer_is_refused(tenant, patient, count_rows):
    body = _body_with_item9(patient, b'{"valueInteger":3,"valueInteger":0}')
    issue = _refused(tenant, count_rows, body)
    assert issue["expression"] == ["QuestionnaireResponse.item[8].answer[0].valueInteger"]
    assert "more than once" in issue["diagnostics"]


def test_a_repeated_item_array_is_refused(tenant, patient, count_rows):
    text = orjson.dumps(phq9(patient))
    zeros = orjson.dumps([_item(code, 0) for code in [*PHQ9, ITEM9]])
    body = text[:-1] + b',"item":' + zeros + b"}"
    issue = _refused(tenant, count_rows, body)
    assert issue["expression"] == ["QuestionnaireResponse.item"]


# --- numbers outside the grammar ------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expression"),
    [
        (b'{"valueInteger":1e200000}', "item[8].answer[0].valueInteger"),
        (b'{"valueDecimal":"1e200000"}', "item[8].answer[0].valueDecimal"),
        (b'{"valueInteger":' + b"3" + b"0" * 3999 + b"}", "item[8].answer[0].valueInteger"),
        (b'{"valueDecimal":"3' + b"0" * 3999 + b'"}', "item[8].answer[0].valueDecimal"),
        (
            b'{"valueCoding":{"system":"urn:example","code":"x","extension":[{"url":"'
            + ITEM_WEIGHT.encode()
            + b'","valueDecimal":"1e200000"}]}}',
            "item[8].answer[0].valueCoding",
        ),
    ],
    ids=["json-exponent", "text-exponent", "json-4000", "text-4000", "weight"],
)
def test_hostile_numbers_in_answers_are_refused_by_form(
    tenant, patient, count_rows, answer, expression
):
    issue = _refused(tenant, count_rows, _body_with_item9(patient, answer))
    assert issue["expression"] == [f"QuestionnaireResponse.{expression}"]
    assert "digits" in issue["diagnostics"]


@pytest.mark.parametrize(
    "total",
    [
        {"valueString": "1e200000"},
        {"valueString": "9" * 4000},
        {"valueQuantity": {"value": "1e200000"}},
        {"valueString": "Infinity"},
        {"valueString": "NaN"},
    ],
)
def test_hostile_totals_are_refused_by_form(tenant, patient, count_rows, total):
    body = _with(phq9(patient), {"linkId": "44261-6", "answer": [total]}, first=False)
    issue = _refused(tenant, count_rows, body)
    assert issue["expression"][0].startswith("QuestionnaireResponse.item[9].answer[0]")


def test_groups_nested_beyond_the_bound_are_refused(tenant, patient, count_rows):
    form = phq9(patient)
    inner: dict[str, Any] = _item("44260-8", 3)
    for depth in range(20):
        inner = {"linkId": f"g{depth}", "item": [inner]}
    form["item"] = [*form["item"][:8], inner]
    issue = _refused(tenant, count_rows, orjson.dumps(form))
    assert issue["code"] == "too-costly"
    assert issue["expression"][0].startswith("QuestionnaireResponse.item[8].item[0]")


@pytest.mark.parametrize("nested", [False, True])
def test_more_items_than_any_form_holds_are_refused(tenant, patient, count_rows, nested):
    form = phq9(patient)
    extra = [{"linkId": f"display-{n}", "text": "."} for n in range(200)]
    if nested:
        form["item"].append({"linkId": "group", "item": extra})
    else:
        form["item"].extend(extra)
    issue = _refused(tenant, count_rows, orjson.dumps(form))
    assert issue["code"] == "too-costly"
    assert issue["expression"][0].startswith("QuestionnaireResponse.item")
