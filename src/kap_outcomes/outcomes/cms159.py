"""Depression Remission at Twelve Months (CMS159, NQF 0710e, MIPS Quality ID 370).

As the measure specifies [CMS159] (eCQI Resource Center, CMS159 "Depression Remission at
Twelve Months", steward MN Community Measurement), and clinical-rules.md section 7:

- Measurement period [period_start, period_end] (dates, usually a calendar year). The
  denominator identification period is [period_start - 14 months, period_start - 2 months).
- Index event: the patient's first PHQ-9 total > 9 inside the identification period (earlier
  or later PHQ-9s do not move it), for a patient with depression (major depression or
  dysthymia) on record.
- Measure assessment period: the index date + 12 months, +- 60 days (both ends included).
  Numerator: the most recent PHQ-9 in that window is < 5 (no PHQ-9 there: not in the
  numerator). Two PHQ-9s at the very same time: the higher total (conservative).
- Denominator exclusions (when recorded): death, hospice or palliative care, bipolar
  disorder, personality disorder, psychotic disorder, pervasive developmental disorder.
- Strata by age group (12-17, 18+). rate = numerator / (denominator - exclusions).
- Not evaluable, counted apart and never silently in or out: a patient with an index-qualifying
  PHQ-9 whose diagnoses are not recorded at all, or who has depression on record but no
  recorded age group.

Calendar months: adding n months keeps the day of the month, or takes the month's last day
when it has no such day (31 January + 1 month = 28 or 29 February).

What this service stores is deliberately minimal (no birth date, no diagnosis codes): the age
group is the one recorded on the patient, read as the age group at the index event, and the
conditions carry no dates, so a recorded exclusion counts whenever it was recorded.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Literal

from kap_outcomes.clinical.points import ScorePoint
from kap_outcomes.outcomes.stats import Proportion, wilson

AgeGroup = Literal["12-17", "18+"]
AGE_GROUPS: tuple[AgeGroup, ...] = ("12-17", "18+")

CONDITIONS: tuple[str, ...] = (
    "depression",
    "dysthymia",
    "bipolar_disorder",
    "personality_disorder",
    "psychotic_disorder",
    "pervasive_developmental_disorder",
    "hospice_or_palliative_care",
    "deceased",
)
"""The closed set of conditions a patient may carry (api-contract.md)."""

DEPRESSION = frozenset({"depression", "dysthymia"})
EXCLUSIONS = frozenset(
    {
        "deceased",
        "hospice_or_palliative_care",
        "bipolar_disorder",
        "personality_disorder",
        "psychotic_disorder",
        "pervasive_developmental_disorder",
    }
)

INDEX_ABOVE = 9
"""Index event: PHQ-9 total > 9. [CMS159]"""
REMISSION_BELOW = 5
"""Remission: PHQ-9 total < 5. [CMS159]"""
WINDOW_MONTHS = 12
WINDOW_DAYS = 60
IDENTIFICATION_START_MONTHS = 14
IDENTIFICATION_END_MONTHS = 2

NotEvaluableReason = Literal["conditions_not_recorded", "age_group_not_recorded"]
Status = Literal[
    "no_index_event", "no_depression", "not_evaluable", "excluded", "numerator", "denominator_only"
]


def add_months(day: date, months: int) -> date:
    """`day` moved by `months` calendar months, clamped to the end of a shorter month."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def identification_period(period_start: date) -> tuple[date, date]:
    """[start, end): 14 months to 2 months before the measurement period starts."""
    return (
        add_months(period_start, -IDENTIFICATION_START_MONTHS),
        add_months(period_start, -IDENTIFICATION_END_MONTHS),
    )


def assessment_window(index_day: date) -> tuple[date, date]:
    """[start, end], both included: 12 months after the index date, +- 60 days."""
    anniversary = add_months(index_day, WINDOW_MONTHS)
    return anniversary - timedelta(days=WINDOW_DAYS), anniversary + timedelta(days=WINDOW_DAYS)


@dataclass(frozen=True, slots=True)
class PatientRecord:
    patient_id: str
    age_group: AgeGroup | None
    conditions: frozenset[str] | None
    """None: not recorded (unknown); an empty set: recorded, none of the closed set."""
    phq9: tuple[ScorePoint, ...]


@dataclass(frozen=True, slots=True)
class PatientResult:
    patient_id: str
    status: Status
    index_event: ScorePoint | None = None
    follow_up: ScorePoint | None = None
    age_group: AgeGroup | None = None
    reason: NotEvaluableReason | None = None


def _day(moment: datetime, zone: tzinfo) -> date:
    """The clinic's calendar day of a moment (clinical-rules section 8: dates are the clinic's)."""
    return moment.astimezone(zone).date()


def _latest(scores: Sequence[ScorePoint]) -> ScorePoint | None:
    if not scores:
        return None
    return max(scores, key=lambda s: (s.administered_at, s.total))


def evaluate(
    patient: PatientRecord, period_start: date, period_end: date, zone: tzinfo = UTC
) -> PatientResult:
    """Where one patient falls in CMS159 for the measurement period (days in ``zone``)."""
    start, end = identification_period(period_start)
    candidates = [
        s
        for s in patient.phq9
        if start <= _day(s.administered_at, zone) < end and s.total > INDEX_ABOVE
    ]
    if not candidates:
        return PatientResult(patient.patient_id, "no_index_event")
    index = min(candidates, key=lambda s: (s.administered_at, -s.total))
    if patient.conditions is None:
        return PatientResult(
            patient.patient_id, "not_evaluable", index, reason="conditions_not_recorded"
        )
    if not patient.conditions & DEPRESSION:
        return PatientResult(patient.patient_id, "no_depression", index)
    if patient.age_group is None:
        return PatientResult(
            patient.patient_id, "not_evaluable", index, reason="age_group_not_recorded"
        )
    low, high = assessment_window(_day(index.administered_at, zone))
    high = min(high, period_end)
    follow_up = _latest(
        [
            s
            for s in patient.phq9
            if low <= _day(s.administered_at, zone) <= high
            and s.administered_at > index.administered_at
        ]
    )
    if patient.conditions & EXCLUSIONS:
        return PatientResult(patient.patient_id, "excluded", index, follow_up, patient.age_group)
    status: Status = (
        "numerator"
        if follow_up is not None and follow_up.total < REMISSION_BELOW
        else "denominator_only"
    )
    return PatientResult(patient.patient_id, status, index, follow_up, patient.age_group)


@dataclass(frozen=True, slots=True)
class Stratum:
    age_group: str
    """"12-17", "18+", or "all" for the whole measure."""
    denominator: int
    exclusions: int
    numerator: int
    performance: Proportion
    """numerator / (denominator - exclusions), with its Wilson interval."""


@dataclass(frozen=True, slots=True)
class Cms159Report:
    period_start: date
    period_end: date
    identification_start: date
    identification_end: date
    strata: tuple[Stratum, ...]
    total: Stratum
    not_evaluable: Mapping[str, int]
    """Patients with an index-qualifying PHQ-9 who cannot be evaluated, by reason."""
    without_depression: int
    """Patients with an index-qualifying PHQ-9 and recorded conditions without depression:
    outside the measure by its definition (reported so that nobody disappears)."""
    patients: tuple[PatientResult, ...]


def _stratum(name: str, results: Sequence[PatientResult]) -> Stratum:
    denominator = sum(
        1 for r in results if r.status in ("excluded", "numerator", "denominator_only")
    )
    exclusions = sum(1 for r in results if r.status == "excluded")
    numerator = sum(1 for r in results if r.status == "numerator")
    return Stratum(
        age_group=name,
        denominator=denominator,
        exclusions=exclusions,
        numerator=numerator,
        performance=wilson(numerator, denominator - exclusions),
    )


def cms159_report(
    patients: Iterable[PatientRecord],
    period_start: date,
    period_end: date,
    zone: tzinfo = UTC,
) -> Cms159Report:
    """CMS159 for the measurement period [period_start, period_end], days in ``zone``."""
    if period_end < period_start:
        raise ValueError("period_end is before period_start")
    results = tuple(
        sorted(
            (evaluate(p, period_start, period_end, zone) for p in patients),
            key=lambda r: r.patient_id,
        )
    )
    start, end = identification_period(period_start)
    strata = tuple(
        _stratum(group, [r for r in results if r.age_group == group]) for group in AGE_GROUPS
    )
    not_evaluable: dict[str, int] = {"conditions_not_recorded": 0, "age_group_not_recorded": 0}
    for r in results:
        if r.reason is not None:
            not_evaluable[r.reason] += 1
    return Cms159Report(
        period_start=period_start,
        period_end=period_end,
        identification_start=start,
        identification_end=end,
        strata=strata,
        total=_stratum("all", results),
        not_evaluable=not_evaluable,
        without_depression=sum(1 for r in results if r.status == "no_depression"),
        patients=results,
    )
