"""The Questionnaires we publish, and the LOINC vocabulary ingest matches forms with.

Every questionnaire and item carries its LOINC ``code``; every answer option carries its LOINC
answer code with both the SDC ``itemWeight`` and the older R4 ``ordinalValue`` extensions
(interop.md: consumers read one or the other). linkIds are the bare LOINC codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from kap_outcomes.clinical.instruments import (
    CSSRS_POSITIONS,
    DIFFICULTY_LOINC,
    FREQUENCY_LABELS,
    ITEM_LOINC,
    PANEL_LOINC,
    TOTAL_LOINC,
    Instrument,
)

LOINC = "http://loinc.org"
ITEM_WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"
ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
CANONICAL_BASE = "https://kap-outcomes.dev/fhir/Questionnaire/"
QUESTIONNAIRE_VERSION = "1.0.0"
PUBLISHED_DATE = "2026-11-25"


@dataclass(frozen=True, slots=True)
class Answer:
    code: str
    display: str
    weight: int


FREQUENCY: tuple[Answer, ...] = tuple(
    Answer(code, display, weight)
    for weight, (code, display) in enumerate(
        zip(("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"), FREQUENCY_LABELS, strict=True)
    )
)
"""LOINC answer list LL358-3 (interop.md)."""

MORE_DAYS_THAN_NOT = Answer("LA18938-3", "More days than not", 2)
"""LOINC's own GAD-7 form answers item 2 (68509-9) with this code: it weighs 2 (interop.md)."""

YES_NO: tuple[Answer, ...] = (Answer("LA32-8", "No", 0), Answer("LA33-6", "Yes", 1))
DIFFICULTY: tuple[Answer, ...] = (
    Answer("LA6572-7", "Not difficult at all", 0),
    Answer("LA6573-5", "Somewhat difficult", 1),
    Answer("LA6575-0", "Very difficult", 2),
    Answer("LA6574-3", "Extremely difficult", 3),
)
"""LOINC answer list LL359-1: stored, never scored."""

QUESTIONNAIRE_IDS: Mapping[Instrument, str] = MappingProxyType(
    {Instrument.PHQ9: "phq-9", Instrument.GAD7: "gad-7", Instrument.CSSRS: "cssrs-screener"}
)
TITLES: Mapping[Instrument, str] = MappingProxyType(
    {
        Instrument.PHQ9: "Patient Health Questionnaire-9 (PHQ-9)",
        Instrument.GAD7: "Generalized Anxiety Disorder-7 (GAD-7)",
        Instrument.CSSRS: "Columbia Suicide Severity Rating Scale, screener",
    }
)
ITEM_TEXT: Mapping[Instrument, tuple[str, ...]] = MappingProxyType(
    {
        Instrument.PHQ9: (
            "Little interest or pleasure in doing things",
            "Feeling down, depressed, or hopeless",
            "Trouble falling or staying asleep, or sleeping too much",
            "Feeling tired or having little energy",
            "Poor appetite or overeating",
            "Feeling bad about yourself, or that you are a failure",
            "Trouble concentrating on things",
            "Moving or speaking slowly, or being fidgety or restless",
            "Thoughts that you would be better off dead, or of hurting yourself",
        ),
        Instrument.GAD7: (
            "Feeling nervous, anxious, or on edge",
            "Not being able to stop or control worrying",
            "Worrying too much about different things",
            "Trouble relaxing",
            "Being so restless that it is hard to sit still",
            "Becoming easily annoyed or irritable",
            "Feeling afraid, as if something awful might happen",
        ),
        Instrument.CSSRS: (
            "Past month: have you wished you were dead or could go to sleep and not wake up?",
            "Past month: have you had any actual thoughts of killing yourself?",
            "Past month: have you been thinking about how you might do this?",
            "Past month: have you had these thoughts and had some intention of acting on them?",
            "Past month: have you started to work out the details of how to kill yourself, and "
            "do you intend to carry out this plan?",
            "Ever: have you done anything, started to do anything, or prepared to do anything "
            "to end your life?",
            "Was that within the past 3 months?",
        ),
    }
)


def answers_for(instrument: Instrument) -> tuple[Answer, ...]:
    return YES_NO if instrument is Instrument.CSSRS else FREQUENCY


def answer_weight(instrument: Instrument, position: int, code: str) -> int | None:
    """The weight of a LOINC answer code on one item, or None if it is not an answer there."""
    for answer in answers_for(instrument):
        if answer.code == code:
            return answer.weight
    if instrument is Instrument.GAD7 and position == 1 and code == MORE_DAYS_THAN_NOT.code:
        return MORE_DAYS_THAN_NOT.weight
    return None


def answer_for_weight(instrument: Instrument, weight: int) -> Answer | None:
    for answer in answers_for(instrument):
        if answer.weight == weight:
            return answer
    return None


def canonical(instrument: Instrument) -> str:
    return CANONICAL_BASE + QUESTIONNAIRE_IDS[instrument]


def versioned_canonical(instrument: Instrument) -> str:
    return f"{canonical(instrument)}|{QUESTIONNAIRE_VERSION}"


def instrument_of_canonical(url: str) -> Instrument | None:
    """Ours (with or without ``|version``), or any URL that ends with the panel's LOINC code."""
    base, _, version = url.partition("|")
    for instrument in Instrument:
        if base == canonical(instrument):
            return instrument if version in ("", QUESTIONNAIRE_VERSION) else None
    for instrument, panel in PANEL_LOINC.items():
        if base.rstrip("/").endswith(panel):
            return instrument
    return None


def _coding(code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": LOINC, "code": code}
    if display:
        coding["display"] = display
    return coding


def _option(answer: Answer) -> dict[str, Any]:
    return {
        "extension": [
            {"url": ITEM_WEIGHT, "valueDecimal": answer.weight},
            {"url": ORDINAL_VALUE, "valueDecimal": answer.weight},
        ],
        "valueCoding": _coding(answer.code, answer.display),
    }


def _choice(code: str, text: str, answers: tuple[Answer, ...], required: bool) -> dict[str, Any]:
    return {
        "linkId": code,
        "code": [_coding(code)],
        "text": text,
        "type": "choice",
        "required": required,
        "answerOption": [_option(a) for a in answers],
    }


def _enable_when_yes(code: str) -> list[dict[str, Any]]:
    return [{"question": code, "operator": "=", "answerCoding": _coding("LA33-6", "Yes")}]


def questionnaire(instrument: Instrument) -> dict[str, Any]:
    codes = ITEM_LOINC[instrument]
    texts = ITEM_TEXT[instrument]
    items: list[dict[str, Any]] = []
    for position, (code, text) in enumerate(zip(codes, texts, strict=True)):
        item = _choice(code, text, answers_for(instrument), required=False)
        if instrument is Instrument.CSSRS:
            item["prefix"] = CSSRS_POSITIONS[position]
            if position in (2, 3, 4):
                item["enableWhen"] = _enable_when_yes(codes[1])
            elif position == 6:
                item["enableWhen"] = _enable_when_yes(codes[5])
        items.append(item)
    if instrument is Instrument.PHQ9:
        items.append(
            _choice(
                DIFFICULTY_LOINC,
                "If you checked off any problems, how difficult have these problems made it "
                "for you to do your work, take care of things at home, or get along with "
                "other people?",
                DIFFICULTY,
                required=False,
            )
        )
    total = TOTAL_LOINC[instrument]
    if total is not None:
        items.append(
            {
                "linkId": total,
                "code": [_coding(total)],
                "text": "Total score (computed by the server)",
                "type": "integer",
                "readOnly": True,
            }
        )
    return {
        "resourceType": "Questionnaire",
        "id": QUESTIONNAIRE_IDS[instrument],
        "meta": {"versionId": "1", "lastUpdated": f"{PUBLISHED_DATE}T00:00:00Z"},
        "url": canonical(instrument),
        "version": QUESTIONNAIRE_VERSION,
        "name": QUESTIONNAIRE_IDS[instrument].replace("-", "_").upper(),
        "title": TITLES[instrument],
        "status": "active",
        "subjectType": ["Patient"],
        "date": PUBLISHED_DATE,
        "publisher": "kap-outcomes",
        "code": [_coding(PANEL_LOINC[instrument])],
        "item": items,
    }


QUESTIONNAIRES: Mapping[str, dict[str, Any]] = MappingProxyType(
    {QUESTIONNAIRE_IDS[i]: questionnaire(i) for i in Instrument}
)
