"""Observations written by EHRs (flowsheet scores), as the ``AssessmentCreate`` /v1 receives.

An EHR often keeps only the PHQ-9 or GAD-7 total (LOINC 44261-6, 70274-6), sometimes with
PHQ-9 item 9 (44260-8) beside it, as one Observation per value, a panel (44249-1, 69737-5)
with ``hasMember`` or ``component``, or a transaction Bundle of them. US Core's own example
carries the total as ``valueString: "12"``. Values come as ``valueInteger``,
``valueDecimal``, ``valueQuantity``, a numeric ``valueString``, or, for an item, a
``valueCodeableConcept`` with the LOINC answer code.

What arrives together is one administration: the members of a panel, the components of an
Observation, and the Observations of one transaction Bundle about the same patient at the
same time. Each administration becomes one assessment (clinical-rules.md section 6):

- item answers (items 1-8, the difficulty question) make it a form, scored as any form; a
  total sent with them must agree with the score;
- otherwise a total makes it a total-only score, judged for safety on the item 9 that came
  with it (none: ``item9_unknown`` and a ``safety_item_missing`` alert);
- item 9 alone is a PHQ-9 form with item 9 only answered: not valid (no total), but its
  safety is judged.

An administration that contradicts itself (a code twice, codes of two instruments) is a 422
naming the second occurrence. Nothing here touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from kap_outcomes.clinical.instruments import (
    DIFFICULTY_LOINC,
    ITEM_COUNT,
    ITEM_LOINC,
    PANEL_LOINC,
    PHQ9_ITEM9,
    TOTAL_LOINC,
    Instrument,
)
from kap_outcomes.clinical.scoring import total_problems
from kap_outcomes.fhir.ingest import (
    VOCABULARY,
    SubjectRef,
    check_total,
    identifier_of,
    number,
    subject_of,
)
from kap_outcomes.fhir.outcome import FhirError, fhir_error
from kap_outcomes.fhir.questionnaires import DIFFICULTY, LOINC, answer_weight

MAX_MEMBERS = 64
"""More readings than a PHQ-9 panel could hold (9 items, total, difficulty): refuse."""

_STATUSES = frozenset({"final", "amended", "corrected"})
_VALUE_KEYS = frozenset(
    {
        "valueQuantity",
        "valueCodeableConcept",
        "valueString",
        "valueBoolean",
        "valueInteger",
        "valueRange",
        "valueRatio",
        "valueSampledData",
        "valueTime",
        "valueDateTime",
        "valuePeriod",
        "valueDecimal",  # not R4, but sent by R5-minded clients: read like an integer
    }
)
_PANELS = {code: instrument for instrument, code in PANEL_LOINC.items()}
_TOTALS = {code: instrument for instrument, code in TOTAL_LOINC.items() if code is not None}


def _invalid(code: str, detail: str, expression: str) -> FhirError:
    return fhir_error(422, code, detail, expression)


@dataclass(frozen=True, slots=True)
class Reading:
    """One coded value: an Observation's own, a component's, or a contained member's."""

    code: str
    instrument: Instrument
    value: int
    where: str


@dataclass(slots=True)
class Administration:
    """Everything that arrived together about one patient at one time."""

    subject: SubjectRef
    effective: str
    where: str
    readings: dict[str, Reading] = field(default_factory=dict)
    identifiers: list[tuple[str, str]] = field(default_factory=list)
    entries: list[tuple[int, str]] = field(default_factory=list)
    """(Bundle entry index, the LOINC code it carried) of each Observation in it."""

    def add(self, reading: Reading) -> None:
        first = self.readings.get(reading.code)
        if first is not None:
            raise _invalid(
                "structure",
                f"{reading.code} appears twice in one administration (first at {first.where})",
                reading.where,
            )
        self.readings[reading.code] = reading


@dataclass(frozen=True, slots=True)
class Score:
    """An administration as /v1 would receive it (items or a total; see the module doc)."""

    instrument: Instrument
    items: list[int | None] | None
    total: int | None
    item9: int | None
    difficulty: int | None
    effective: str
    subject: SubjectRef
    identifiers: list[tuple[str, str]]
    entries: list[tuple[int, str]]
    where: str


# One Observation ------------------------------------------------------------------------------


def _loinc_code(concept: Any, where: str) -> str:
    """The one LOINC code of ``code`` that this service reads."""
    codings = concept.get("coding") if isinstance(concept, dict) else None
    if not isinstance(codings, list):
        raise _invalid("required", "code needs a LOINC coding", where)
    found: set[str] = {
        str(coding["code"])
        for coding in codings
        if isinstance(coding, dict)
        and coding.get("system") == LOINC
        and isinstance(coding.get("code"), str)
        and coding["code"] in VOCABULARY
    }
    if not found:
        raise _invalid(
            "not-supported",
            "not a PHQ-9 or GAD-7 score this service reads (LOINC 44261-6, 70274-6, 44260-8, "
            "the items, or the panels 44249-1, 69737-5)",
            f"{where}.coding",
        )
    if len(found) > 1:
        raise _invalid("structure", "code carries several score codes", f"{where}.coding")
    code = found.pop()
    if VOCABULARY[code] is Instrument.CSSRS:
        raise _invalid(
            "not-supported",
            "send the C-SSRS screener as a QuestionnaireResponse",
            f"{where}.coding",
        )
    return code


def _whole(value: Decimal, detail: str, where: str) -> int:
    if value != value.to_integral_value():
        raise _invalid("value", detail, where)
    return int(value)


def _numeric(holder: dict[str, Any], where: str) -> tuple[Decimal, str] | None:
    """A number from valueInteger, valueDecimal, valueString or valueQuantity."""
    for key in ("valueInteger", "valueDecimal", "valueString"):
        if key in holder:
            return number(holder[key], f"{where}.{key}"), f"{where}.{key}"
    if "valueQuantity" in holder:
        quantity = holder["valueQuantity"]
        if not isinstance(quantity, dict):
            raise _invalid("structure", "valueQuantity must be an object", where)
        place = f"{where}.valueQuantity.value"
        return number(quantity.get("value"), place), place
    return None


def _reading(holder: dict[str, Any], code: str, where: str) -> Reading | None:
    """The value of one total or item (None: a panel, which carries none)."""
    instrument = VOCABULARY[code]
    present = [key for key in holder if key in _VALUE_KEYS]
    if len(present) > 1:
        raise _invalid("structure", "an Observation carries one value[x], this one several", where)
    if code in _PANELS:
        if present:
            raise _invalid(
                "structure", "a panel carries no value of its own", f"{where}.{present[0]}"
            )
        return None
    if not present:
        if "dataAbsentReason" in holder:
            raise _invalid("required", "a score without a value cannot be stored", where)
        raise _invalid("required", "a value is required", where)
    if code in _TOTALS:
        found = _numeric(holder, where)
        if found is None:
            raise _invalid("value", "a total must be a number", f"{where}.{present[0]}")
        value, place = found
        total = _whole(value, "a total must be a whole number", place)
        for _, detail in total_problems(instrument, total, None):
            raise _invalid("value", detail, place)
        return Reading(code, instrument, total, place)
    if "valueCodeableConcept" in holder:
        place = f"{where}.valueCodeableConcept"
        concept = holder["valueCodeableConcept"]
        codings = concept.get("coding") if isinstance(concept, dict) else None
        weights = {
            weight
            for coding in (codings if isinstance(codings, list) else [])
            if isinstance(coding, dict)
            and coding.get("system", LOINC) == LOINC
            and (weight := _answer_code_weight(instrument, code, coding.get("code"))) is not None
        }
        if len(weights) != 1:
            raise _invalid("code-invalid", "no single LOINC answer code for this item", place)
        return Reading(code, instrument, weights.pop(), place)
    found = _numeric(holder, where)
    if found is None:
        raise _invalid(
            "value", "an item takes a LOINC answer code or a number", f"{where}.{present[0]}"
        )
    value, place = found
    weight = _whole(value, "an answer weight must be a whole number", place)
    if not 0 <= weight <= 3:
        raise _invalid("value", "must be between 0 and 3", place)
    return Reading(code, instrument, weight, place)


def _answer_code_weight(instrument: Instrument, code: str, answer: Any) -> int | None:
    if not isinstance(answer, str):
        return None
    if code == DIFFICULTY_LOINC:
        return next((option.weight for option in DIFFICULTY if option.code == answer), None)
    return answer_weight(instrument, ITEM_LOINC[instrument].index(code), answer)


def _effective(obs: dict[str, Any], where: str) -> str:
    for key in ("effectiveDateTime", "effectiveInstant"):
        value = obs.get(key)
        if isinstance(value, str):
            return value
    raise _invalid("required", "effectiveDateTime is required", f"{where}.effective")


def _instant_key(text: str, where: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if value.tzinfo is None:
            raise ValueError
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _invalid(
            "value", "effectiveDateTime must be a date-time with an offset", where
        ) from None


@dataclass(frozen=True, slots=True)
class _Parsed:
    code: str
    subject: SubjectRef
    effective: str
    identifier: tuple[str, str] | None
    readings: list[Reading]
    members: list[str]
    """hasMember references, as written."""


def _members(obs: dict[str, Any], key: str, where: str, what: str) -> list[Any]:
    """``obs[key]``: an array (absent: empty) of at most ``MAX_MEMBERS`` ``what``."""
    value = obs.get(key) or []
    if not isinstance(value, list):
        raise _invalid("structure", f"{key} must be an array", f"{where}.{key}")
    if len(value) > MAX_MEMBERS:
        raise fhir_error(422, "too-costly", f"more than {MAX_MEMBERS} {what}", where)
    return value


def _observation(obs: Any, where: str) -> _Parsed:
    if not isinstance(obs, dict) or obs.get("resourceType") != "Observation":
        raise _invalid("structure", "an Observation is expected here", where)
    if obs.get("status") not in _STATUSES:
        raise _invalid(
            "business-rule",
            "only a final (or amended, corrected) score can be ingested",
            f"{where}.status",
        )
    code = _loinc_code(obs.get("code"), f"{where}.code")
    readings: list[Reading] = []
    own = _reading(obs, code, where)
    if own is not None:
        readings.append(own)
    for index, component in enumerate(_members(obs, "component", where, "components")):
        place = f"{where}.component[{index}]"
        if not isinstance(component, dict):
            raise _invalid("structure", "a component must be an object", place)
        member = _reading(component, _loinc_code(component.get("code"), f"{place}.code"), place)
        if member is None:
            raise _invalid("structure", "a component cannot be a panel", place)
        readings.append(member)
    members: list[str] = []
    for index, reference in enumerate(_members(obs, "hasMember", where, "members")):
        target = reference.get("reference") if isinstance(reference, dict) else None
        if not isinstance(target, str):
            raise _invalid(
                "structure", "hasMember needs a reference", f"{where}.hasMember[{index}]"
            )
        members.append(target)
    return _Parsed(
        code=code,
        subject=subject_of(obs, f"{where}.subject"),
        effective=_effective(obs, where),
        identifier=identifier_of(obs, f"{where}.identifier"),
        readings=readings,
        members=members,
    )


# Administrations → scores ---------------------------------------------------------------------


def _score(admin: Administration) -> Score:
    instruments = {reading.instrument for reading in admin.readings.values()}
    if len(instruments) > 1:
        second = list(admin.readings.values())[-1]
        raise _invalid(
            "business-rule", "scores of several instruments in one administration", second.where
        )
    if not instruments:
        raise _invalid("required", "a panel without any score or answer", admin.where)
    instrument = instruments.pop()
    answers = {
        ITEM_LOINC[instrument].index(code): reading
        for code, reading in admin.readings.items()
        if code in ITEM_LOINC[instrument]
    }
    total_code = TOTAL_LOINC[instrument]
    total = admin.readings.get(total_code) if total_code is not None else None
    difficulty = admin.readings.get(DIFFICULTY_LOINC)

    def made(items: list[int | None] | None, total: int | None, item9: int | None) -> Score:
        return Score(
            instrument=instrument,
            items=items,
            total=total,
            item9=item9,
            difficulty=difficulty.value if difficulty is not None else None,
            effective=admin.effective,
            subject=admin.subject,
            identifiers=admin.identifiers,
            entries=admin.entries,
            where=admin.where,
        )

    item9 = answers.get(PHQ9_ITEM9) if instrument is Instrument.PHQ9 else None
    others = set(answers) - ({PHQ9_ITEM9} if instrument is Instrument.PHQ9 else set())
    if total is not None and not others:
        return made(None, total.value, item9.value if item9 is not None else None)
    if not answers:
        where = difficulty.where if difficulty is not None else admin.where
        raise _invalid("required", "the difficulty question alone is no score", where)
    items: list[int | None] = [
        answers[position].value if position in answers else None
        for position in range(ITEM_COUNT[instrument])
    ]
    if total is not None:
        check_total(instrument, items, Decimal(total.value), total.where)
    return made(items, None, None)


def read_observation(document: Any) -> Score:
    """One Observation (with its components and contained members) → one score."""
    if not isinstance(document, dict):
        raise fhir_error(400, "structure", "the body must be a JSON object", "Observation")
    if document.get("resourceType") != "Observation":
        raise _invalid("structure", "resourceType must be Observation", "resourceType")
    parsed = _observation(document, "Observation")
    admin = Administration(subject=parsed.subject, effective=parsed.effective, where="Observation")
    admin.entries.append((0, parsed.code))
    if parsed.identifier is not None:
        admin.identifiers.append(parsed.identifier)
    for reading in parsed.readings:
        admin.add(reading)
    contained = document.get("contained") or []
    if not isinstance(contained, list):
        raise _invalid("structure", "contained must be an array", "Observation.contained")
    by_id = {
        item.get("id"): (index, item)
        for index, item in enumerate(contained)
        if isinstance(item, dict) and isinstance(item.get("id"), str)
    }
    for index, target in enumerate(parsed.members):
        where = f"Observation.hasMember[{index}]"
        if not target.startswith("#") or target[1:] not in by_id:
            raise _invalid(
                "not-found",
                "a panel's members must come with it: contained (#id), or in one transaction "
                "Bundle",
                where,
            )
        position, resource = by_id[target[1:]]
        member = _observation(resource, f"Observation.contained[{position}]")
        if member.members:
            raise _invalid("structure", "a member cannot be a panel", where)
        for reading in member.readings:
            admin.add(reading)
    return _score(admin)


# A transaction Bundle ----------------------------------------------------------------------------

MAX_ENTRIES = 200


def read_transaction(document: Any) -> tuple[list[Score], int]:
    """A transaction Bundle of Observations → its scores, and how many entries it had.

    Every entry must be ``POST Observation``; a panel's ``hasMember`` names entries of the
    Bundle (by ``fullUrl`` or ``Observation/{id}``). Entries about the same patient at the same
    instant are one administration.
    """
    entries = _transaction_entries(document)
    parsed: list[_Parsed] = []
    names: dict[str, int] = {}
    for index, entry in enumerate(entries):
        parsed.append(_transaction_entry(entry, index))
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str):
            names[full_url] = index
        resource = entry.get("resource")
        if isinstance(resource, dict) and isinstance(resource.get("id"), str):
            names[f"Observation/{resource['id']}"] = index
    owner = _panel_owners(parsed, names)
    return [_score(admin) for admin in _administrations(parsed, owner)], len(entries)


def _transaction_entries(document: Any) -> list[Any]:
    """The entries of a transaction Bundle (1 to MAX_ENTRIES), or the error saying why not."""
    if not isinstance(document, dict):
        raise fhir_error(400, "structure", "the body must be a JSON object", "Bundle")
    if document.get("resourceType") != "Bundle":
        raise _invalid("structure", "resourceType must be Bundle", "resourceType")
    if document.get("type") != "transaction":
        raise _invalid("not-supported", "only a transaction Bundle is accepted", "Bundle.type")
    entries = document.get("entry")
    if not isinstance(entries, list) or not entries:
        raise _invalid("required", "a transaction needs entries", "Bundle.entry")
    if len(entries) > MAX_ENTRIES:
        raise fhir_error(422, "too-costly", f"more than {MAX_ENTRIES} entries", "Bundle.entry")
    return entries


def _transaction_entry(entry: Any, index: int) -> _Parsed:
    """One entry: a plain ``POST Observation`` (no conditional create), its Observation read."""
    where = f"Bundle.entry[{index}]"
    if not isinstance(entry, dict):
        raise _invalid("structure", "an entry must be an object", where)
    request = entry.get("request")
    if (
        not isinstance(request, dict)
        or request.get("method") != "POST"
        or request.get("url") != "Observation"
    ):
        raise _invalid(
            "not-supported",
            "each entry must be a POST of an Observation",
            f"{where}.request",
        )
    if "ifNoneExist" in request:
        raise _invalid(
            "not-supported",
            "conditional create inside a Bundle is not supported: use Idempotency-Key",
            f"{where}.request.ifNoneExist",
        )
    return _observation(entry.get("resource"), f"{where}.resource")


def _panel_owners(parsed: list[_Parsed], names: dict[str, int]) -> dict[int, int]:
    """Each member entry's panel entry: a member belongs to its panel's administration."""
    owner: dict[int, int] = {}
    for index, one in enumerate(parsed):
        for position, target in enumerate(one.members):
            where = f"Bundle.entry[{index}].resource.hasMember[{position}]"
            found = names.get(target)
            if found is None:
                raise _invalid(
                    "not-found", "a panel's members must be entries of the same Bundle", where
                )
            if parsed[found].members or found in owner or found == index:
                raise _invalid("structure", "an entry is a member of one panel only", where)
            if parsed[found].subject != one.subject:
                raise _invalid("business-rule", "a member is about another patient", where)
            owner[found] = index
    return owner


def _administrations(parsed: list[_Parsed], owner: dict[int, int]) -> list[Administration]:
    """The entries grouped by patient and instant (a member by its panel's), in Bundle order."""
    admins: dict[tuple[SubjectRef, datetime], Administration] = {}
    for index, one in enumerate(parsed):
        root = parsed[owner.get(index, index)]
        root_index = owner.get(index, index)
        key = (
            root.subject,
            _instant_key(root.effective, f"Bundle.entry[{root_index}].resource.effective"),
        )
        admin = admins.get(key)
        if admin is None:
            admin = admins[key] = Administration(
                subject=root.subject,
                effective=root.effective,
                where=f"Bundle.entry[{root_index}].resource",
            )
        admin.entries.append((index, one.code))
        if one.identifier is not None:
            admin.identifiers.append(one.identifier)
        for reading in one.readings:
            admin.add(reading)
    return list(admins.values())
