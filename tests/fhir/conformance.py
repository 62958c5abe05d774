"""Three layers of checks on every resource the server emits.

1. ``fhirclient`` R4 (4.0.1) models in strict mode: unknown or wrongly shaped elements raise.
2. ``fhir.resources.R4B`` (pydantic): a second, independent structure check.
3. Hand-written rules the libraries do not enforce: required bindings, survey category, LOINC
   code present, score arithmetic, the band matching the total.
"""

from __future__ import annotations

import importlib
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from kap_outcomes.clinical.instruments import Instrument

from ..loinc import ITEMS, TOTALS, answer_weight

LOINC = "http://loinc.org"
FHIRCLIENT_MODULES = {
    "Bundle": "bundle",
    "CapabilityStatement": "capabilitystatement",
    "Condition": "condition",
    "Group": "group",
    "Observation": "observation",
    "OperationOutcome": "operationoutcome",
    "Patient": "patient",
    "Questionnaire": "questionnaire",
    "QuestionnaireResponse": "questionnaireresponse",
}
ISSUE_TYPES = {
    "invalid",
    "structure",
    "required",
    "value",
    "invariant",
    "security",
    "login",
    "unknown",
    "expired",
    "forbidden",
    "suppressed",
    "processing",
    "not-supported",
    "duplicate",
    "multiple-matches",
    "not-found",
    "deleted",
    "too-long",
    "code-invalid",
    "extension",
    "too-costly",
    "business-rule",
    "conflict",
    "transient",
    "lock-error",
    "no-store",
    "exception",
    "timeout",
    "incomplete",
    "throttled",
    "informational",
}
OBSERVATION_STATUS = {
    "registered",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "cancelled",
    "entered-in-error",
    "unknown",
}
QR_STATUS = {"in-progress", "completed", "amended", "entered-in-error", "stopped"}
BANDS = {
    "44261-6": [
        (4, "minimal"),
        (9, "mild"),
        (14, "moderate"),
        (19, "moderately_severe"),
        (27, "severe"),
    ],
    "70274-6": [(4, "minimal"), (9, "mild"), (14, "moderate"), (21, "severe")],
}


def check(resource: dict[str, Any]) -> dict[str, Any]:
    """All three layers; returns the resource for chaining."""
    kind = resource["resourceType"]
    module = importlib.import_module(f"fhirclient.models.{FHIRCLIENT_MODULES[kind]}")
    getattr(module, kind)(resource, strict=True)
    get_fhir_model_class(kind).model_validate(resource)
    RULES[kind](resource)
    return resource


def _loinc_codes(concept: dict[str, Any]) -> list[str]:
    return [c["code"] for c in concept.get("coding", []) if c.get("system") == LOINC]


def _bundle(resource: dict[str, Any]) -> None:
    if resource["type"] == "transaction-response":
        for entry in resource["entry"]:
            assert entry["response"]["status"].startswith("201")
            assert entry["response"]["location"].startswith("Observation/")
        return
    assert resource["type"] == "searchset"
    for entry in resource.get("entry", []):
        assert entry["fullUrl"].endswith(
            f"{entry['resource']['resourceType']}/{entry['resource']['id']}"
        )
        check(entry["resource"])


def _observation(obs: dict[str, Any]) -> None:
    assert obs["status"] in OBSERVATION_STATUS
    categories = [c for cat in obs["category"] for c in cat["coding"]]
    assert {
        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
        "code": "survey",
        "display": "Survey",
    } in categories
    codes = _loinc_codes(obs["code"])
    assert len(codes) == 1, "exactly one LOINC code"
    assert obs["subject"]["reference"].startswith("Patient/")
    for derived in obs.get("derivedFrom", []):  # none for a total-only score (no form)
        assert derived["reference"].startswith("QuestionnaireResponse/")
    assert (
        ("value" + "Quantity" in obs)
        or any(k.startswith("value") for k in obs)
        or ("dataAbsentReason" in obs)
    )
    if codes[0] in BANDS:
        quantity = obs["valueQuantity"]
        assert quantity["system"] == "http://unitsofmeasure.org"
        assert quantity["code"] == quantity["unit"] == "{score}"
        total = quantity["value"]
        assert isinstance(total, int)
        band = next(name for top, name in BANDS[codes[0]] if total <= top)
        interpretation = obs["interpretation"][0]
        assert interpretation["coding"][0]["code"] == band
        assert interpretation["text"]


def _questionnaire_response(qr: dict[str, Any]) -> None:
    assert qr["status"] in QR_STATUS
    assert qr["subject"]["reference"].startswith("Patient/")
    assert "|" in qr["questionnaire"]
    instrument = next(
        i
        for i in Instrument
        if qr["questionnaire"]
        .split("|")[0]
        .endswith({"phq9": "phq-9", "gad7": "gad-7", "cssrs": "cssrs-screener"}[i.value])
    )
    by_code = {item["linkId"]: item for item in qr["item"]}
    answers: list[int | None] = []
    for position, code in enumerate(ITEMS[instrument.value]):
        item = by_code[code]
        assert item["linkId"] == code
        if "answer" in item:
            coding = item["answer"][0]["valueCoding"]
            assert coding["system"] == LOINC
            answers.append(answer_weight(instrument.value, position, coding["code"]))
        else:
            answers.append(None)
    total_code = TOTALS[instrument.value]
    if total_code in by_code and None not in answers:  # score arithmetic on a complete form
        assert by_code[total_code]["answer"][0]["valueInteger"] == sum(
            a for a in answers if a is not None
        )


def _questionnaire(q: dict[str, Any]) -> None:
    assert q["status"] in {"draft", "active", "retired", "unknown"}
    assert q["url"] and q["version"]
    assert _loinc_codes(q["code"][0] if isinstance(q["code"], list) else q["code"]) or q["code"]
    for item in q["item"]:
        assert item["code"][0]["system"] == LOINC
        for option in item.get("answerOption", []):
            urls = {e["url"] for e in option["extension"]}
            assert urls == {
                "http://hl7.org/fhir/StructureDefinition/itemWeight",
                "http://hl7.org/fhir/StructureDefinition/ordinalValue",
            }
            assert option["valueCoding"]["system"] == LOINC
            assert option["valueCoding"]["code"].startswith("LA")


def _outcome(outcome: dict[str, Any]) -> None:
    assert outcome["issue"]
    for issue in outcome["issue"]:
        assert issue["severity"] in {"fatal", "error", "warning", "information"}
        assert issue["code"] in ISSUE_TYPES


def _patient(patient: dict[str, Any]) -> None:
    assert patient["identifier"][0]["system"] == "https://kap-outcomes.dev/fhir/sid/external-id"
    for identifier in patient["identifier"]:
        assert identifier["system"] and identifier["value"]


CONDITION_CLINICAL = {"active", "recurrence", "relapse", "inactive", "remission", "resolved"}
CONDITION_VERIFICATION = {
    "unconfirmed",
    "provisional",
    "differential",
    "confirmed",
    "refuted",
    "entered-in-error",
}


def _condition(condition: dict[str, Any]) -> None:
    """R4 Condition: required bindings of clinicalStatus and verificationStatus (condition-
    clinical, condition-ver-status), con-3 (a problem-list item that is not entered-in-error has
    a clinicalStatus), con-5 (none when entered-in-error), a Patient subject."""
    clinical = condition.get("clinicalStatus", {}).get("coding", [])
    verification = condition.get("verificationStatus", {}).get("coding", [])
    for coding in clinical:
        assert coding["system"] == "http://terminology.hl7.org/CodeSystem/condition-clinical"
        assert coding["code"] in CONDITION_CLINICAL
    for coding in verification:
        assert coding["system"] == "http://terminology.hl7.org/CodeSystem/condition-ver-status"
        assert coding["code"] in CONDITION_VERIFICATION
    refuted = any(c["code"] == "entered-in-error" for c in verification)
    problem = any(
        c.get("code") == "problem-list-item"
        for category in condition.get("category", [])
        for c in category.get("coding", [])
    )
    if problem and not refuted:
        assert clinical, "con-3"
    if refuted:
        assert not clinical, "con-5"
    assert condition["subject"]["reference"].startswith("Patient/")
    assert condition["code"]["text"]


def _capability(cs: dict[str, Any]) -> None:
    assert cs["fhirVersion"] == "4.0.1"
    assert cs["kind"] == "instance"
    assert "application/fhir+json" in cs["format"]


def _group(group: dict[str, Any]) -> None:
    """A cohort of patients: person, actual, its quantity the number of members it lists
    (a search lists none and says so with the SUBSETTED tag)."""
    assert group["type"] == "person" and group["actual"] is True
    members = group.get("member", [])
    if any(t.get("code") == "SUBSETTED" for t in group["meta"].get("tag", [])):
        assert not members
    else:
        assert group["quantity"] == len(members)
    for member in members:
        assert member["entity"]["reference"].startswith("Patient/")


RULES = {
    "Group": _group,
    "Bundle": _bundle,
    "Observation": _observation,
    "QuestionnaireResponse": _questionnaire_response,
    "Questionnaire": _questionnaire,
    "OperationOutcome": _outcome,
    "Patient": _patient,
    "CapabilityStatement": _capability,
    "Condition": _condition,
}
