"""Stored rows as FHIR R4 resources: QuestionnaireResponse, derived Observations, Patient,
and a patient's recorded conditions as Conditions (``{patient id}-{slug}``).

The QuestionnaireResponse is the source of truth; Observations are derived from it (US Core
screening and assessment pattern): the total score (PHQ-9, GAD-7), PHQ-9 item 9 and the
seven C-SSRS screener answers. An Observation's id is ``{assessment id}-{kind}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from kap_outcomes.assessments.models import Assessment
from kap_outcomes.clinical.instruments import (
    CSSRS_POSITIONS,
    DIFFICULTY_LOINC,
    ITEM_LOINC,
    PHQ9_ITEM9,
    TOTAL_LOINC,
    Instrument,
)
from kap_outcomes.fhir.questionnaires import (
    DIFFICULTY,
    ITEM_WEIGHT,
    LOINC,
    ORDINAL_VALUE,
    TITLES,
    Answer,
    answer_for_weight,
    versioned_canonical,
)
from kap_outcomes.patients import models as patient_models
from kap_outcomes.patients.models import Patient

EXTERNAL_ID_SYSTEM = patient_models.EXTERNAL_ID_SYSTEM
"""``Patient.identifier.system`` of our patients' ``external_id`` (the EHR's own reference)."""
AGE_GROUP_EXTENSION = "https://kap-outcomes.dev/fhir/StructureDefinition/age-group"
"""``Patient.extension``: the CMS159 age group ("12-17" or "18+"); no birth date is kept."""
CONDITION_EXTENSION = "https://kap-outcomes.dev/fhir/StructureDefinition/recorded-condition"
"""``Patient.extension``: one recorded condition of the closed set (CMS159 diagnosis and
exclusions), a SNOMED CT concept where one matches it exactly."""
SNOMED = "http://snomed.info/sct"
CONDITION_CODES: dict[str, tuple[str | None, str]] = {
    # SNOMED CT International, concepts of the "disorder" hierarchy.
    "depression": ("35489007", "Depressive disorder"),
    "dysthymia": ("78667006", "Dysthymia"),
    "bipolar_disorder": ("13746004", "Bipolar disorder"),
    "personality_disorder": ("33449004", "Personality disorder"),
    "psychotic_disorder": ("69322001", "Psychotic disorder"),
    "pervasive_developmental_disorder": ("35919005", "Pervasive developmental disorder"),
    # Two regimes (hospice care 385763009, palliative care 103735009) recorded as one fact:
    # no single concept means "either", so the text says it and no code pretends to.
    "hospice_or_palliative_care": (None, "Hospice or palliative care"),
}
"""`deceased` is not a condition in FHIR: it is ``Patient.deceasedBoolean``."""
CONDITION_SLUGS: Mapping[str, str] = MappingProxyType(
    {
        "depression": "depression",
        "dysthymia": "dysthymia",
        "bipolar_disorder": "bipolar-disorder",
        "personality_disorder": "personality-disorder",
        "psychotic_disorder": "psychotic-disorder",
        # shortened: a FHIR id has at most 64 characters, a patient id takes 36 of them
        "pervasive_developmental_disorder": "developmental-disorder",
        "hospice_or_palliative_care": "hospice-or-palliative-care",
    }
)
"""A Condition's id is ``{patient id}-{slug}``: one per (patient, recorded condition)."""
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
SEVERITY_SYSTEM = "https://kap-outcomes.dev/fhir/CodeSystem/severity"
"""Our own severity bands: LOINC has no codes for them (interop.md)."""
RISK_SYSTEM = "https://kap-outcomes.dev/fhir/CodeSystem/cssrs-risk"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
UCUM = "http://unitsofmeasure.org"

QR_STATUS: Mapping[str, str] = MappingProxyType(
    {"final": "completed", "amended": "amended", "entered-in-error": "entered-in-error"}
)
OBSERVATION_STATUS: Mapping[str, str] = MappingProxyType(
    {"final": "final", "amended": "amended", "entered-in-error": "entered-in-error"}
)
SEVERITY_TEXT: Mapping[str, str] = MappingProxyType(
    {
        "minimal": "Minimal",
        "mild": "Mild",
        "moderate": "Moderate",
        "moderately_severe": "Moderately severe",
        "severe": "Severe",
    }
)

TOTAL = "total"
ITEM9 = "item9"


def observation_kinds(instrument: Instrument) -> tuple[str, ...]:
    """The derived Observations of an assessment of this instrument, in order."""
    if instrument is Instrument.PHQ9:
        return (TOTAL, ITEM9)
    if instrument is Instrument.GAD7:
        return (TOTAL,)
    return CSSRS_POSITIONS


def observation_code(instrument: Instrument, kind: str) -> str:
    if kind == TOTAL:
        code = TOTAL_LOINC[instrument]
        assert code is not None
        return code
    if kind == ITEM9:
        return ITEM_LOINC[Instrument.PHQ9][PHQ9_ITEM9]
    return ITEM_LOINC[Instrument.CSSRS][CSSRS_POSITIONS.index(kind)]


@lru_cache(maxsize=1024)
def instant(value: datetime) -> str:
    """A FHIR instant in UTC. Cached: a row's few times are shown in each resource made
    from it (bulk export makes several per row)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _meta(row: Assessment) -> dict[str, Any]:
    return {"versionId": str(row.version), "lastUpdated": instant(row.version_at)}


def _loinc(code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": LOINC, "code": code}
    if display:
        coding["display"] = display
    return coding


@lru_cache(maxsize=128)
def _answer_coding(answer: Answer) -> dict[str, Any]:
    return {
        "extension": [
            {"url": ITEM_WEIGHT, "valueDecimal": answer.weight},
            {"url": ORDINAL_VALUE, "valueDecimal": answer.weight},
        ],
        **_loinc(answer.code, answer.display),
    }


def patient_reference(patient_id: str) -> dict[str, str]:
    return {"reference": f"Patient/{patient_id}"}


# The parts below are the same for every resource with the same answer: made once and shared
# by the resources that show them (never changed after they are made; a caller changes only
# a resource's top level, as a search does with ``identifier``). Bulk export makes hundreds of
# thousands of resources from a handful of distinct answers.


@lru_cache(maxsize=1024)
def _item(instrument: Instrument, link_id: str, value: int | None) -> dict[str, Any]:
    # R4 QuestionnaireResponse items carry no code: the linkId is the LOINC code, as in our
    # Questionnaires.
    item: dict[str, Any] = {"linkId": link_id}
    answer = answer_for_weight(instrument, value) if value is not None else None
    if answer is not None:
        item["answer"] = [{"valueCoding": _answer_coding(answer)}]
    return item


@lru_cache(maxsize=16)
def _difficulty_item(difficulty: int) -> dict[str, Any]:
    return {
        "linkId": DIFFICULTY_LOINC,
        "answer": [{"valueCoding": _answer_coding(DIFFICULTY[difficulty])}],
    }


def questionnaire_response(row: Assessment, identifier: tuple[str, str] | None) -> dict[str, Any]:
    instrument = Instrument(row.instrument)
    items = [
        _item(instrument, code, value)
        for code, value in zip(ITEM_LOINC[instrument], row.items or (), strict=False)
    ]
    if instrument is Instrument.PHQ9 and row.difficulty is not None:
        items.append(_difficulty_item(row.difficulty))
    total = TOTAL_LOINC[instrument]
    if total is not None and row.total is not None:
        items.append({"linkId": total, "answer": [{"valueInteger": row.total}]})
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": row.id,
        "meta": _meta(row),
    }
    if identifier is not None:
        resource["identifier"] = {"system": identifier[0], "value": identifier[1]}
    resource.update(
        {
            "questionnaire": versioned_canonical(instrument),
            "status": QR_STATUS[row.status],
            "subject": patient_reference(row.patient_id),
            "authored": instant(row.administered_at),
            "item": items,
        }
    )
    return resource


def observation(row: Assessment, kind: str) -> dict[str, Any]:
    instrument = Instrument(row.instrument)
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"{row.id}-{kind}",
        "meta": _meta(row),
        "status": OBSERVATION_STATUS[row.status],
        "category": _SURVEY,
        "code": _observation_concept(instrument, kind),
        "subject": patient_reference(row.patient_id),
        "effectiveDateTime": instant(row.administered_at),
        "issued": instant(row.version_at),
    }
    if kind == TOTAL:
        if row.total is None:
            resource["dataAbsentReason"] = _absent("error", "Error")
        else:
            resource["valueQuantity"] = _score(row.total)
        if row.severity is not None:
            resource["interpretation"] = _interpretation(row.severity)
    else:
        value = _answer_of(row, kind)
        answer = answer_for_weight(instrument, value) if value is not None else None
        if answer is None:
            absent = ("not-asked", "Not Asked") if instrument is Instrument.CSSRS else None
            resource["dataAbsentReason"] = _absent(
                *(absent or ("asked-unknown", "Asked But Unknown"))
            )
        else:
            resource["valueCodeableConcept"] = _answer_concept(answer)
    if is_form(row):  # a total-only score has no form to derive from
        resource["derivedFrom"] = [{"reference": f"QuestionnaireResponse/{row.id}"}]
    return resource


def is_form(row: Assessment) -> bool:
    """True for a completed form (served as a QuestionnaireResponse); False for a total-only
    score, which has no answers and is served as Observations only."""
    return row.items is not None


def _answer_of(row: Assessment, kind: str) -> int | None:
    if kind == ITEM9 and not is_form(row):
        return row.item9
    position = PHQ9_ITEM9 if kind == ITEM9 else CSSRS_POSITIONS.index(kind)
    items = row.items or []
    return items[position] if position < len(items) else None


_SURVEY = [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}]}]


@lru_cache(maxsize=64)
def _observation_concept(instrument: Instrument, kind: str) -> dict[str, Any]:
    return {
        "coding": [_loinc(observation_code(instrument, kind))],
        "text": _code_text(instrument, kind),
    }


@lru_cache(maxsize=128)
def _score(total: int) -> dict[str, Any]:
    return {"value": total, "unit": "{score}", "system": UCUM, "code": "{score}"}


@lru_cache(maxsize=32)
def _interpretation(severity: str) -> list[dict[str, Any]]:
    text = SEVERITY_TEXT.get(severity, severity)
    return [
        {
            "coding": [{"system": SEVERITY_SYSTEM, "code": severity, "display": text}],
            "text": text,
        }
    ]


@lru_cache(maxsize=128)
def _answer_concept(answer: Answer) -> dict[str, Any]:
    return {"coding": [_loinc(answer.code, answer.display)], "text": answer.display}


@lru_cache(maxsize=16)
def _absent(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": DATA_ABSENT, "code": code, "display": display}]}


def _code_text(instrument: Instrument, kind: str) -> str:
    if kind == TOTAL:
        return f"{TITLES[instrument]} total score"
    if kind == ITEM9:
        return "PHQ-9 item 9: thoughts of being better off dead or of self-harm"
    return f"C-SSRS screener {kind}"


def served_kinds(row: Assessment) -> list[str]:
    """The Observations an assessment is served as: no total when none was computed; a
    total-only PHQ-9 has its item 9 Observation only when item 9 came with the total."""
    return [
        kind
        for kind in observation_kinds(Instrument(row.instrument))
        if (kind != TOTAL or row.total is not None)
        and (kind != ITEM9 or is_form(row) or row.item9 is not None)
    ]


def observations(row: Assessment) -> list[dict[str, Any]]:
    """Every Observation derived from one assessment, in order."""
    return [observation(row, kind) for kind in served_kinds(row)]


def _condition_concept(name: str) -> dict[str, Any]:
    code, display = CONDITION_CODES[name]
    concept: dict[str, Any] = {"text": display}
    if code is not None:
        concept["coding"] = [{"system": SNOMED, "code": code, "display": display}]
    return concept


def _condition_extension(name: str) -> dict[str, Any]:
    return {"url": CONDITION_EXTENSION, "valueCodeableConcept": _condition_concept(name)}


def recorded_conditions(row: Patient) -> list[str]:
    """The condition names stored on a patient row (sorted; ``deceased`` among them)."""
    return [c for c in (row.conditions or "").split(",") if c]


def condition_id(patient_id: str, name: str) -> str:
    return f"{patient_id}-{CONDITION_SLUGS[name]}"


def condition(row: Patient, name: str) -> dict[str, Any]:
    """One recorded condition of a patient as a problem-list Condition (never ``deceased``)."""
    return {
        "resourceType": "Condition",
        "id": condition_id(row.id, name),
        "clinicalStatus": {
            "coding": [{"system": CONDITION_CLINICAL, "code": "active", "display": "Active"}]
        },
        "verificationStatus": {
            "coding": [
                {"system": CONDITION_VERIFICATION, "code": "confirmed", "display": "Confirmed"}
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": CONDITION_CATEGORY,
                        "code": "problem-list-item",
                        "display": "Problem List Item",
                    }
                ]
            }
        ],
        "code": _condition_concept(name),
        "subject": patient_reference(row.id),
    }


def conditions(row: Patient) -> list[dict[str, Any]]:
    """Every Condition of a patient row, in the order of the stored names."""
    return [condition(row, c) for c in recorded_conditions(row) if c in CONDITION_SLUGS]


def patient(row: Patient, identifiers: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """A Patient: ``external_id`` under our own system first, then the identifiers stored in
    other systems."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": row.id,
        "meta": {"versionId": "1", "lastUpdated": instant(row.created_at)},
    }
    recorded = recorded_conditions(row)
    extensions = [_condition_extension(c) for c in recorded if c in CONDITION_CODES]
    age_group = getattr(row, "age_group", None)
    if age_group is not None:
        extensions.insert(0, {"url": AGE_GROUP_EXTENSION, "valueCode": age_group})
    if extensions:
        resource["extension"] = extensions
    resource["identifier"] = [{"system": EXTERNAL_ID_SYSTEM, "value": row.external_id}] + [
        {"system": system, "value": value} for system, value in identifiers or []
    ]
    resource["active"] = True
    if "deceased" in recorded:
        resource["deceasedBoolean"] = True
    return resource
