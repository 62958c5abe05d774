"""A QuestionnaireResponse written by anyone, as the ``AssessmentCreate`` /v1 would receive.

There is no single canonical PHQ-9 form (interop.md): items are matched by LOINC, from
``item.code`` or else a linkId that is or ends with the code (``"44250-9"``, ``"/44250-9"``,
``"H1/44250-9"``); answers by LOINC answer code or by weight (``valueInteger``,
``valueDecimal``, or a ``valueCoding`` carrying ``itemWeight``/``ordinalValue``). A total, in
any numeric form, must agree with the server's score. Nothing here touches the database.

A form that contradicts itself is refused, never resolved by position or order
(clinical-rules.md section 6): an item answered twice (a repeated linkId or code, anywhere in
nested groups or under answers; two answers, or two values, to a single-answer item; a coding
whose code and weight disagree), an item of another instrument, or an answer that no item of
the instrument can take. Each is a 422 naming the item, so no answer is silently discarded.
Numbers are judged by their form before any arithmetic (:mod:`kap_outcomes.numbers`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from kap_outcomes.clinical.instruments import (
    DIFFICULTY_LOINC,
    ITEM_LOINC,
    PANEL_LOINC,
    TOTAL_LOINC,
    Instrument,
)
from kap_outcomes.clinical.scoring import score
from kap_outcomes.fhir.outcome import FhirError, fhir_error
from kap_outcomes.fhir.questionnaires import (
    DIFFICULTY,
    ITEM_WEIGHT,
    LOINC,
    ORDINAL_VALUE,
    answer_weight,
    instrument_of_canonical,
)
from kap_outcomes.numbers import TEXT_NUMBER_RULE, bounded_decimal

MAX_ITEMS = 200
"""More items than any of our forms could hold, nested or not: refuse rather than walk."""


@dataclass(frozen=True, slots=True)
class SubjectRef:
    patient_id: str | None = None
    identifier_system: str | None = None
    identifier_value: str | None = None


@dataclass(frozen=True, slots=True)
class IngestedForm:
    instrument: Instrument
    items: list[int | None]
    difficulty: int | None
    authored: str
    subject: SubjectRef
    identifier: tuple[str, str] | None


def _invalid(code: str, detail: str, expression: str) -> FhirError:
    return fhir_error(422, code, detail, expression)


def _flatten(items: Any, path: str, out: list[tuple[str, dict[str, Any]]]) -> None:
    if items is None:
        return
    if not isinstance(items, list):
        raise _invalid("structure", "item must be an array", path)
    for index, item in enumerate(items):
        where = f"{path}[{index}]"
        if not isinstance(item, dict):
            raise _invalid("structure", "an item must be an object", where)
        if len(out) >= MAX_ITEMS:
            raise fhir_error(422, "too-costly", f"more than {MAX_ITEMS} items", path)
        out.append((where, item))
        _flatten(item.get("item"), f"{where}.item", out)
        answers = item.get("answer")
        if isinstance(answers, list):
            for a_index, answer in enumerate(answers):
                if isinstance(answer, dict):
                    _flatten(answer.get("item"), f"{where}.answer[{a_index}].item", out)


_CODE_SHAPE = re.compile(r"^[0-9]+-[0-9]$")


def _loinc_codes(item: dict[str, Any]) -> Iterator[str]:
    """LOINC codes of an item: ``item.code`` first, else what its linkId ends with."""
    codes = item.get("code")
    found = False
    if isinstance(codes, list):
        for coding in codes:
            if isinstance(coding, dict) and coding.get("system", LOINC) == LOINC:
                code = coding.get("code")
                if isinstance(code, str):
                    found = True
                    yield code
    if found:
        return
    link_id = item.get("linkId")
    if isinstance(link_id, str):
        # The code after the last separator, or the whole linkId: "/44250-9", "Q/69725-0".
        # Only the end is read (a LOINC code has at most 10 characters): a linkId of a
        # megabyte costs no more than a short one.
        tail = re.split(r"[^0-9-]", link_id[-16:])[-1]
        if _CODE_SHAPE.match(tail):
            yield tail


def number(value: Any, where: str) -> Decimal:
    """A bounded number, judged by its form before any conversion (never echoed)."""
    number = bounded_decimal(value)
    if number is None:
        raise _invalid("value", f"not a number here: {TEXT_NUMBER_RULE}", where)
    return number


def _whole(number: Decimal, where: str) -> int:
    if number != number.to_integral_value():
        raise _invalid("value", "an answer weight must be a whole number", where)
    return int(number)


_VALUE_KEYS = frozenset(
    {
        "valueBoolean",
        "valueDecimal",
        "valueInteger",
        "valueDate",
        "valueDateTime",
        "valueTime",
        "valueString",
        "valueUri",
        "valueAttachment",
        "valueCoding",
        "valueQuantity",
        "valueReference",
    }
)
"""QuestionnaireResponse.item.answer.value[x] (FHIR R4): an answer carries exactly one."""


def one_value(answer: dict[str, Any], where: str) -> None:
    if sum(1 for key in answer if key in _VALUE_KEYS) > 1:
        raise _invalid("structure", "an answer carries one value[x], this one several", where)


def _coding_weight(coding: dict[str, Any], where: str) -> Decimal | None:
    """The weight a coding's ``itemWeight``/``ordinalValue`` extensions give it; several
    weights that disagree are refused."""
    extensions = coding.get("extension")
    weights: set[Decimal] = set()
    if isinstance(extensions, list):
        for ext in extensions:
            if isinstance(ext, dict) and ext.get("url") in (ITEM_WEIGHT, ORDINAL_VALUE):
                values = [ext[key] for key in ("valueDecimal", "valueInteger") if key in ext]
                if len(values) != 1:
                    raise _invalid("structure", "a weight extension carries one value", where)
                weights.add(number(values[0], where))
    if len(weights) > 1:
        raise _invalid("business-rule", "the coding carries weights that disagree", where)
    return weights.pop() if weights else None


def _answer(
    instrument: Instrument, position: int | None, item: dict[str, Any], where: str
) -> int | None:
    """The weight of an item's answer (``position`` None: the PHQ-9 difficulty question)."""
    answers = item.get("answer")
    if answers is None or answers == []:
        return None
    if not isinstance(answers, list) or not isinstance(answers[0], dict):
        raise _invalid("structure", "answer must be an array of objects", f"{where}.answer")
    if len(answers) > 1:
        raise _invalid("value", "a scored item takes one answer", f"{where}.answer")
    answer = answers[0]
    where = f"{where}.answer[0]"
    one_value(answer, where)
    if "valueCoding" in answer:
        coding = answer["valueCoding"]
        if not isinstance(coding, dict):
            raise _invalid("structure", "valueCoding must be an object", where)
        where = f"{where}.valueCoding"
        code = coding.get("code")
        sent_weight = _coding_weight(coding, where)
        found: int | None = None
        if coding.get("system", LOINC) == LOINC and isinstance(code, str):
            if position is None:
                found = next((o.weight for o in DIFFICULTY if o.code == code), None)
            else:
                found = answer_weight(instrument, position, code)
        if found is not None:
            if sent_weight is not None and sent_weight != found:
                raise _invalid("business-rule", "the answer's code and its weight disagree", where)
            return found
        if sent_weight is None:
            raise _invalid("code-invalid", "unknown answer code for this item", where)
        return _whole(sent_weight, where)
    for key in ("valueInteger", "valueDecimal"):
        if key in answer:
            return _whole(number(answer[key], f"{where}.{key}"), f"{where}.{key}")
    if "valueBoolean" in answer and instrument is Instrument.CSSRS and position is not None:
        flag = answer["valueBoolean"]
        if isinstance(flag, bool):
            return int(flag)
    raise _invalid("value", "the answer must be a coding, an integer or a decimal", where)


def _total(item: dict[str, Any], where: str) -> Decimal | None:
    answers = item.get("answer")
    if not isinstance(answers, list) or not answers or not isinstance(answers[0], dict):
        return None
    if len(answers) > 1:
        raise _invalid("value", "a total takes one answer", f"{where}.answer")
    answer = answers[0]
    where = f"{where}.answer[0]"
    one_value(answer, where)
    for key in ("valueInteger", "valueDecimal", "valueString"):
        if key in answer:
            return number(answer[key], f"{where}.{key}")
    if "valueQuantity" in answer:
        quantity = answer["valueQuantity"]
        if not isinstance(quantity, dict):
            raise _invalid("structure", "valueQuantity must be an object", where)
        return number(quantity.get("value"), f"{where}.valueQuantity.value")
    raise _invalid("value", "a total must be a number", where)


NAMES: Mapping[Instrument, str] = MappingProxyType(
    {Instrument.PHQ9: "PHQ-9", Instrument.GAD7: "GAD-7", Instrument.CSSRS: "C-SSRS screener"}
)


def _vocabulary() -> dict[str, Instrument]:
    """Every LOINC code ingest reads (items, totals, panels, the PHQ-9 difficulty question),
    with the instrument it belongs to."""
    owners: dict[str, Instrument] = {DIFFICULTY_LOINC: Instrument.PHQ9}
    for instrument in Instrument:
        total = TOTAL_LOINC[instrument]
        codes = [*ITEM_LOINC[instrument], PANEL_LOINC[instrument], *([total] if total else [])]
        owners.update(dict.fromkeys(codes, instrument))
    return owners


VOCABULARY: Mapping[str, Instrument] = MappingProxyType(_vocabulary())
_ANSWERABLE: Mapping[Instrument, frozenset[str]] = MappingProxyType(
    {
        instrument: frozenset(
            code
            for code, owner in VOCABULARY.items()
            if owner is instrument and code != PANEL_LOINC[instrument]
        )
        for instrument in Instrument
    }
)
"""The codes whose items take an answer: the items, the total, the difficulty question."""


def _codes(item: dict[str, Any]) -> set[str]:
    return {code for code in _loinc_codes(item) if code in VOCABULARY}


def _place(flat: list[tuple[str, dict[str, Any]]]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each code of the vocabulary → the one item carrying it, in document order.

    An item met twice (by code or by linkId, at any depth) is refused, never resolved by
    taking the first or the last.
    """
    located: dict[str, tuple[str, dict[str, Any]]] = {}
    link_ids: dict[str, str] = {}
    for where, item in flat:
        codes = _codes(item)
        if len(codes) > 1:
            raise _invalid("structure", "an item carries one item code, this one several", where)
        for code in codes:
            if code in located:
                first = located[code][0]
                raise _invalid("structure", f"item {code} appears twice (first at {first})", where)
            located[code] = (where, item)
        link_id = item.get("linkId")
        if isinstance(link_id, str):
            if link_id in link_ids:
                raise _invalid(
                    "structure", f"this linkId appears twice (first at {link_ids[link_id]})", where
                )
            link_ids[link_id] = where
    return located


def _answered(item: dict[str, Any]) -> bool:
    answers = item.get("answer")
    return answers is not None and answers != []


def _refuse_what_the_instrument_cannot_take(
    instrument: Instrument, flat: list[tuple[str, dict[str, Any]]]
) -> None:
    """An item of another instrument, or an answer no item of this one takes, is a 422:
    a PHQ-9's answers are never stored as an empty GAD-7, and no answer is dropped."""
    name = NAMES[instrument]
    for where, item in flat:
        codes = _codes(item)
        for code in codes:
            owner = VOCABULARY[code]
            if owner is not instrument:
                raise _invalid(
                    "business-rule",
                    f"{code} belongs to the {NAMES[owner]}, not to this {name} form",
                    where,
                )
        if _answered(item) and not codes & _ANSWERABLE[instrument]:
            raise _invalid(
                "business-rule",
                f"an answer no item of the {name} takes (matched by LOINC code or linkId)",
                where,
            )


def _instrument(form: dict[str, Any], codes: Mapping[str, object]) -> Instrument:
    canonical = form.get("questionnaire")
    if isinstance(canonical, str):
        found = instrument_of_canonical(canonical)
        if found is not None:
            return found
    matched = {
        instrument: sum(1 for code in ITEM_LOINC[instrument] if code in codes)
        for instrument in Instrument
    }
    best = max(matched.values())
    if best == 0:
        panels = {panel: i for i, panel in PANEL_LOINC.items()}
        for code in codes:
            if code in panels:
                return panels[code]
        raise _invalid(
            "not-supported",
            "not a PHQ-9, GAD-7 or C-SSRS screener form (no item matched by LOINC)",
            "QuestionnaireResponse.questionnaire",
        )
    winners = [i for i, n in matched.items() if n == best]
    if len(winners) > 1:
        raise _invalid("invalid", "items of several instruments", "QuestionnaireResponse.item")
    return winners[0]


def subject_of(resource: dict[str, Any], where: str) -> SubjectRef:
    """``subject``: ``Patient/{id}`` or an identifier (``where`` names it in errors)."""
    subject = resource.get("subject")
    if subject is None:
        raise _invalid("required", "subject is required (Patient/{id} or an identifier)", where)
    if not isinstance(subject, dict):
        raise _invalid("structure", "subject must be a Reference", where)
    reference = subject.get("reference")
    if isinstance(reference, str):
        match = re.search(r"(?:^|/)Patient/([A-Za-z0-9\-.]{1,64})$", reference)
        if match is None:
            raise _invalid("value", "subject must reference a Patient", f"{where}.reference")
        return SubjectRef(patient_id=match.group(1))
    identifier = subject.get("identifier")
    if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
        system = identifier.get("system")
        return SubjectRef(
            identifier_system=system if isinstance(system, str) else None,
            identifier_value=identifier["value"],
        )
    raise _invalid("required", "subject needs a reference or an identifier", where)


def identifier_of(resource: dict[str, Any], where: str) -> tuple[str, str] | None:
    """The resource's (first) identifier as (system, value), or None."""
    identifier = resource.get("identifier")
    if identifier is None:
        return None
    if isinstance(identifier, list):  # an array (Observation; R5 forms): take the first
        if identifier:
            where = f"{where}[0]"
        identifier = identifier[0] if identifier else None
        if identifier is None:
            return None
    if not isinstance(identifier, dict):
        raise _invalid("structure", "identifier must be an Identifier", where)
    system, value = identifier.get("system", ""), identifier.get("value")
    if not isinstance(system, str) or not isinstance(value, str) or not value:
        raise _invalid("value", "identifier needs a value (and a system)", where)
    if len(system) > 255 or len(value) > 255:
        raise _invalid("value", "identifier system and value are at most 255 characters", where)
    return system, value


def read_form(form: Any) -> IngestedForm:
    """Map a QuestionnaireResponse onto our items; 422 OperationOutcome on anything unusable."""
    if not isinstance(form, dict):
        raise fhir_error(
            400, "structure", "the body must be a JSON object", "QuestionnaireResponse"
        )
    if form.get("resourceType") != "QuestionnaireResponse":
        raise _invalid("structure", "resourceType must be QuestionnaireResponse", "resourceType")
    status = form.get("status")
    if status not in ("completed", "amended"):
        raise _invalid(
            "business-rule", "only a completed form can be ingested", "QuestionnaireResponse.status"
        )
    authored = form.get("authored")
    if not isinstance(authored, str):
        raise _invalid("required", "authored is required", "QuestionnaireResponse.authored")

    flat: list[tuple[str, dict[str, Any]]] = []
    _flatten(form.get("item"), "QuestionnaireResponse.item", flat)
    located = _place(flat)
    instrument = _instrument(form, located)
    _refuse_what_the_instrument_cannot_take(instrument, flat)

    items: list[int | None] = []
    for position, code in enumerate(ITEM_LOINC[instrument]):
        if code in located:
            where, item = located[code]
            items.append(_answer(instrument, position, item, where))
        else:
            items.append(None)
    difficulty: int | None = None
    if instrument is Instrument.PHQ9 and DIFFICULTY_LOINC in located:
        where, item = located[DIFFICULTY_LOINC]
        difficulty = _answer(instrument, None, item, where)

    total_code = TOTAL_LOINC[instrument]
    if total_code is not None and total_code in located:
        where, item = located[total_code]
        sent = _total(item, where)
        if sent is not None:
            check_total(instrument, items, sent, where)
    return IngestedForm(
        instrument=instrument,
        items=items,
        difficulty=difficulty,
        authored=authored,
        subject=subject_of(form, "QuestionnaireResponse.subject"),
        identifier=identifier_of(form, "QuestionnaireResponse.identifier"),
    )


def check_total(instrument: Instrument, items: list[int | None], sent: Decimal, where: str) -> None:
    """The sender's total must be ours, or (items missing) the plain sum of what was answered."""
    if any(
        isinstance(v, int) and not 0 <= v <= 3 for v in items
    ):  # out of range: the scoring check reports it
        return
    result = score(instrument, items)
    answered_sum = sum(v for v in items if v is not None)
    accepted = {Decimal(answered_sum)}
    if result.total is not None:
        accepted.add(Decimal(result.total))
    if result.raw_total is not None:
        accepted.add(Decimal(str(result.raw_total)))
    if sent not in accepted:
        shown = result.total if result.total is not None else "none (too many items missing)"
        raise _invalid(
            "business-rule",
            f"the form's total does not match the score computed from its answers ({shown})",
            where,
        )
