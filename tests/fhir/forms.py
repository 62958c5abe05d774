"""QuestionnaireResponses written the ways other systems write them (interop.md)."""

from __future__ import annotations

from typing import Any

from ..loinc import FREQUENCY_CODES, GAD7_ITEMS, PHQ9_ITEMS

LOINC = "http://loinc.org"
FREQ = list(FREQUENCY_CODES)
AUTHORED = "2026-03-02T15:00:00Z"


def us_core_phq9(patient_id: str, answers: list[int | None], total: Any = None) -> dict[str, Any]:
    """US Core / LHC-Forms: linkId "/44250-9", answers as LOINC codings, valueDecimal total."""
    items: list[dict[str, Any]] = []
    for code, value in zip(PHQ9_ITEMS, answers, strict=True):
        item: dict[str, Any] = {"linkId": f"/{code}", "text": "question"}
        if value is not None:
            item["answer"] = [{"valueCoding": {"system": LOINC, "code": FREQ[value]}}]
        items.append(item)
    if total is not None:
        items.append({"linkId": "/44261-6", "answer": [{"valueDecimal": total}]})
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "http://loinc.org/q/44249-1",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authored": AUTHORED,
        "item": items,
    }


def loinc_gad7(subject: dict[str, Any], answers: list[int], total: Any = None) -> dict[str, Any]:
    """LOINC's own style: opaque numeric linkIds, item.code, nested in a group; item 2 may be
    answered "more days than not" (LA18938-3)."""
    items: list[dict[str, Any]] = []
    for index, (code, value) in enumerate(zip(GAD7_ITEMS, answers, strict=True)):
        answer_code = "LA18938-3" if index == 1 and value == 2 else FREQ[value]
        items.append(
            {
                "linkId": f"/{index + 100}",
                "code": [{"system": LOINC, "code": code}],
                "answer": [{"valueCoding": {"system": LOINC, "code": answer_code}}],
            }
        )
    if total is not None:
        items.append(
            {
                "linkId": "/999",
                "code": [{"system": LOINC, "code": "70274-6"}],
                "answer": [{"valueQuantity": {"value": total, "unit": "{score}"}}],
            }
        )
    return {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "subject": subject,
        "authored": AUTHORED,
        "item": [{"linkId": "/0", "code": [{"system": LOINC, "code": "69737-5"}], "item": items}],
    }


def bare_phq9(patient_id: str, answers: list[int | None], total: Any = None) -> dict[str, Any]:
    """HL7 PHR style: bare-code linkIds, answers by weight (valueInteger, or a coding with
    only an itemWeight extension), a numeric-string total."""
    items: list[dict[str, Any]] = []
    for index, (code, value) in enumerate(zip(PHQ9_ITEMS, answers, strict=True)):
        item: dict[str, Any] = {"linkId": code}
        if value is not None:
            if index % 2:
                item["answer"] = [{"valueInteger": value}]
            else:
                item["answer"] = [
                    {
                        "valueCoding": {
                            "extension": [
                                {
                                    "url": "http://hl7.org/fhir/StructureDefinition/itemWeight",
                                    "valueDecimal": value,
                                }
                            ],
                            "system": "urn:example:local-answers",
                            "code": f"A{value}",
                        }
                    }
                ]
        items.append(item)
    if total is not None:
        items.append({"linkId": "44261-6", "answer": [{"valueString": str(total)}]})
    return {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authored": AUTHORED,
        "item": items,
    }


# Observations as EHRs send them ------------------------------------------------------------

EHR_MRN = "urn:oid:2.16.840.1.113883.19.5"
"""An EHR's own identifier system (the HL7 example OID), for synthetic MRNs."""


def us_core_phq9_total(subject: dict[str, Any]) -> dict[str, Any]:
    """US Core's published example Observation 'PHQ9-item-example-44261-6' (US Core 8/9, file
    input/examples/Observation-PHQ9-item-example-44261-6.json), element for element, with only
    its subject replaced by a synthetic one. Note the total as ``valueString: "12"``, the
    second (disability-status) category, the performer and the derivedFrom a form we never
    saw."""
    return {
        "resourceType": "Observation",
        "id": "PHQ9-item-example-44261-6",
        "meta": {
            "profile": [
                "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-screening-assessment|8.0.0"
            ]
        },
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                        "display": "Survey",
                    }
                ]
            },
            {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-category",
                        "code": "disability-status",
                        "display": "Disability Status",
                    }
                ]
            },
        ],
        "code": {
            "coding": [
                {
                    "system": "http://loinc.org",
                    "code": "44261-6",
                    "display": "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]",
                }
            ],
            "text": "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]",
        },
        "subject": subject,
        "effectiveDateTime": "2022-11-29T20:50:32.718000+00:00",
        "performer": [{"reference": "Practitioner/practitioner-1"}],
        "valueString": "12",
        "derivedFrom": [{"reference": "QuestionnaireResponse/phq-9-example"}],
    }


def us_core_phq9_item9(subject: dict[str, Any], answer_code: str) -> dict[str, Any]:
    """US Core's example 'PHQ9-item-example-44260-8' (item 9 as a LOINC answer code), its
    subject replaced and its answer chosen by the test."""
    displays = dict(
        zip(
            FREQ,
            ["Not at all", "Several days", "More than half the days", "Nearly every day"],
            strict=True,
        )
    )
    return {
        "resourceType": "Observation",
        "id": "PHQ9-item-example-44260-8",
        "meta": {
            "profile": [
                "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-screening-assessment"
            ]
        },
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                        "display": "Survey",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {
                    "system": "http://loinc.org",
                    "code": "44260-8",
                    "display": "Thoughts that you would be better off dead, or of hurting "
                    "yourself in some way",
                }
            ],
            "text": "Thoughts that you would be better off dead, or of hurting yourself in "
            "some way",
        },
        "subject": subject,
        "effectiveDateTime": "2022-11-29T20:50:32.718000+00:00",
        "performer": [{"reference": "Practitioner/practitioner-1"}],
        "valueCodeableConcept": {
            "coding": [
                {
                    "system": "http://loinc.org",
                    "code": answer_code,
                    "display": displays[answer_code],
                }
            ],
            "text": displays[answer_code],
        },
        "derivedFrom": [{"reference": "QuestionnaireResponse/phq-9-example"}],
    }
