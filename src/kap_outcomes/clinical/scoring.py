"""Scoring of PHQ-9, GAD-7 and the C-SSRS screener (clinical-rules.md section 1).

`score` assumes `instruments.item_problems` found nothing: the right number of items,
each an integer in range or None (not answered).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from types import MappingProxyType

from kap_outcomes.clinical.instruments import ITEM_COUNT, PHQ9_ITEM9, Instrument


class Severity(StrEnum):
    MINIMAL = "minimal"
    MILD = "mild"
    MODERATE = "moderate"
    MODERATELY_SEVERE = "moderately_severe"
    SEVERE = "severe"


class Risk(StrEnum):
    """C-SSRS screener risk level (clinical-rules.md 1.3)."""

    NONE = "none"
    LOW = "low"
    MODERATE = "moderate"
    HIGH = "high"


RISK_RANK: Mapping[Risk, int] = MappingProxyType(
    {Risk.NONE: 0, Risk.LOW: 1, Risk.MODERATE: 2, Risk.HIGH: 3}
)


@dataclass(frozen=True, slots=True)
class Score:
    valid: bool
    total: int | None
    raw_total: float | None
    prorated: bool
    missing_items: int
    severity: Severity | None
    subscores: dict[str, int] = field(default_factory=dict)
    risk: Risk | None = None
    flags: tuple[str, ...] = ()


MAX_MISSING: Mapping[Instrument, int] = MappingProxyType({Instrument.PHQ9: 2, Instrument.GAD7: 1})
"""Most unanswered items that are still prorated. PHQ-9: 2 [NHSDD]. GAD-7: 1, ENG:
no official rule exists; 1 of 7 keeps the missing share under the PHQ-9's 2 of 9."""

SCREEN_POSITIVE = 3
"""PHQ-2 [Kroenke03] and GAD-2 [Kroenke07] screens are positive at >= 3."""

_PHQ9_BANDS: tuple[tuple[int, Severity], ...] = (
    (4, Severity.MINIMAL),
    (9, Severity.MILD),
    (14, Severity.MODERATE),
    (19, Severity.MODERATELY_SEVERE),
    (27, Severity.SEVERE),
)
_GAD7_BANDS: tuple[tuple[int, Severity], ...] = (
    (4, Severity.MINIMAL),
    (9, Severity.MILD),
    (14, Severity.MODERATE),
    (21, Severity.SEVERE),
)


def round_half_up(value: Fraction | float) -> int:
    """Round to the nearest integer, halves away from zero (4.5 -> 5, 14.625 -> 15).

    ENG: whole-number scores are what registries accept [MNCM]; never banker's
    rounding. Floats are converted exactly, so pass a Fraction when it matters.
    """
    exact = Fraction(value)
    magnitude = math.floor(abs(exact) + Fraction(1, 2))
    return magnitude if exact >= 0 else -magnitude


def _band(total: int, bands: tuple[tuple[int, Severity], ...]) -> Severity:
    if total < 0 or total > bands[-1][0]:
        raise ValueError(f"total must be between 0 and {bands[-1][0]}")
    return next(severity for upper, severity in bands if total <= upper)


def severity_bands(instrument: Instrument) -> tuple[tuple[int, int, Severity], ...]:
    """(lowest, highest, severity) of each band of a scored instrument, lowest band first
    (PHQ-9 [Kroenke01], GAD-7 [Spitzer06]): what charts shade."""
    bands = _PHQ9_BANDS if instrument is Instrument.PHQ9 else _GAD7_BANDS
    lows = (0, *(upper + 1 for upper, _ in bands[:-1]))
    return tuple((low, upper, severity) for low, (upper, severity) in zip(lows, bands, strict=True))


def phq9_severity(total: int) -> Severity:
    """PHQ-9 bands 0-4, 5-9, 10-14, 15-19, 20-27 [Kroenke01]."""
    return _band(total, _PHQ9_BANDS)


def gad7_severity(total: int) -> Severity:
    """GAD-7 bands 0-4, 5-9, 10-14, 15-21 [Spitzer06]."""
    return _band(total, _GAD7_BANDS)


_SEVERITY: Mapping[Instrument, Callable[[int], Severity]] = MappingProxyType(
    {Instrument.PHQ9: phq9_severity, Instrument.GAD7: gad7_severity}
)


def cssrs_risk(items: Sequence[int | None]) -> Risk | None:
    """C-SSRS screener risk, first match wins [Columbia]:
    high: q4, q5, or q6 with q6b; moderate: q3, or q6 without q6b = 1;
    low: q1 or q2; none: everything answered is 0.

    ENG choices where the table is silent:
    - None when nothing at all was answered, since nothing was screened.
    - Answers that break the skip logic still count, conservatively (1.3). So
      q6b = 1 ("within the past 3 months") means high even when q6 is not 1:
      otherwise no row would match, and a yes must never come out as "none".
    """
    q1, q2, q3, q4, q5, q6, q6b = items
    if all(value is None for value in items):
        return None
    if q4 == 1 or q5 == 1 or q6b == 1:
        return Risk.HIGH
    if q3 == 1 or q6 == 1:
        return Risk.MODERATE
    if q1 == 1 or q2 == 1:
        return Risk.LOW
    return Risk.NONE


def score(instrument: Instrument, items: Sequence[int | None]) -> Score:
    """Score one assessment; see `_score_sum` and `_score_cssrs`."""
    if instrument is Instrument.CSSRS:
        return _score_cssrs(items)
    return _score_sum(instrument, items)


def _score_sum(instrument: Instrument, items: Sequence[int | None]) -> Score:
    """PHQ-9 / GAD-7 sum score.

    Total = sum of items [Kroenke01, Spitzer06]. With up to MAX_MISSING items
    unanswered the total is prorated, sum x count / answered, computed exactly and
    rounded half-up [NHSDD, MNCM]; beyond that the assessment is invalid. PHQ-2 / GAD-2
    = items 1 + 2 when both are answered, positive at >= 3 [Kroenke03, Kroenke07];
    reported even on an invalid form, as the 2-item screen is complete on its own.
    PHQ-9 item 9 flags (`item9_negative`, never "no risk"; `item9_missing`) are
    set whatever the validity, because safety always looks at item 9 [Louzon16].
    """
    count = ITEM_COUNT[instrument]
    answered = [value for value in items if value is not None]
    missing = count - len(answered)
    flags: list[str] = []
    subscores: dict[str, int] = {}

    first, second = items[0], items[1]
    if first is not None and second is not None:
        name = "phq2" if instrument is Instrument.PHQ9 else "gad2"
        subscores[name] = first + second
        if subscores[name] >= SCREEN_POSITIVE:
            flags.append(f"{name}_positive")

    if instrument is Instrument.PHQ9:
        item9 = items[PHQ9_ITEM9]
        if item9 is None:
            flags.append("item9_missing")
        elif item9 == 0:
            flags.append("item9_negative")

    if missing > MAX_MISSING[instrument]:
        return Score(
            valid=False,
            total=None,
            raw_total=None,
            prorated=False,
            missing_items=missing,
            severity=None,
            subscores=subscores,
            flags=tuple(sorted(flags)),
        )

    raw = Fraction(sum(answered) * count, len(answered))
    total = round_half_up(raw)
    return Score(
        valid=True,
        total=total,
        raw_total=float(raw),
        prorated=missing > 0,
        missing_items=missing,
        severity=_SEVERITY[instrument](total),
        subscores=subscores,
        flags=tuple(sorted(flags)),
    )


TOTAL_MAX: Mapping[Instrument, int] = MappingProxyType({Instrument.PHQ9: 27, Instrument.GAD7: 21})
"""The highest total: 9 items x 3 [Kroenke01], 7 items x 3 [Spitzer06]."""


def total_problems(instrument: Instrument, total: object, item9: object) -> list[tuple[str, str]]:
    """Problems of a total-only score (clinical-rules.md section 6), as (field, detail); empty
    means acceptable. The total must be an integer within the instrument's range; item 9 (the
    PHQ-9 only) an integer 0-3. Details never echo the value sent."""
    problems: list[tuple[str, str]] = []
    top = TOTAL_MAX.get(instrument)
    if top is None:
        problems.append(("total", f"{instrument.value} has no total score: send its items"))
    elif isinstance(total, bool) or not isinstance(total, int):
        problems.append(("total", "must be an integer"))
    elif not 0 <= total <= top:
        problems.append(("total", f"must be between 0 and {top}"))
    if item9 is not None:
        if instrument is not Instrument.PHQ9:
            problems.append(("item9", "only a PHQ-9 total takes item 9"))
        elif isinstance(item9, bool) or not isinstance(item9, int):
            problems.append(("item9", "must be an integer or null"))
        elif not 0 <= item9 <= 3:
            problems.append(("item9", "must be between 0 and 3"))
    return problems


def score_total(instrument: Instrument, total: int, item9: int | None) -> Score:
    """A total-only score: an EHR sent the total without the answers (clinical-rules.md
    section 6, ENG). The total is taken as it is (severity from its band [Kroenke01,
    Spitzer06]), never prorated; no PHQ-2 / GAD-2 can be computed. A PHQ-9 total without its
    item 9 carries ``item9_unknown``: safety cannot be judged from a total. With item 9 the
    usual item 9 flags apply (``item9_negative``, never "no risk" [Louzon16]).
    Assumes `total_problems` found nothing.
    """
    flags: list[str] = []
    if instrument is Instrument.PHQ9:
        if item9 is None:
            flags.append("item9_unknown")
        elif item9 == 0:
            flags.append("item9_negative")
    return Score(
        valid=True,
        total=total,
        raw_total=float(total),
        prorated=False,
        missing_items=0,
        severity=_SEVERITY[instrument](total),
        subscores={},
        flags=tuple(flags),
    )


def _score_cssrs(items: Sequence[int | None]) -> Score:
    """C-SSRS screener: a risk level, no total and no severity [Columbia].

    `missing_items` counts the questions the skip logic required but that are null:
    q1, q2 and q6 always, q3-q5 when q2 = 1, q6b when q6 = 1 (ENG: null otherwise
    means "not asked", which is correct). Valid unless nothing at all was answered
    (ENG: nothing was screened, so no risk level can be stated).
    If q2 = 0 but q3-q5 hold a 1, the flag `cssrs_skip_logic_violation` is set and
    the risk uses what was sent (ENG, clinical-rules.md 1.3). ENG, same reason: the
    flag is also set when the gate question was not asked (null), and for q6b = 1
    when q6 is not 1.
    """
    q1, q2, q3, q4, q5, q6, q6b = items
    required = [q1, q2, q6]
    if q2 == 1:
        required += [q3, q4, q5]
    if q6 == 1:
        required.append(q6b)
    flags: list[str] = []
    if (q2 != 1 and 1 in (q3, q4, q5)) or (q6 != 1 and q6b == 1):
        flags.append("cssrs_skip_logic_violation")
    risk = cssrs_risk(items)
    return Score(
        valid=risk is not None,
        total=None,
        raw_total=None,
        prorated=False,
        missing_items=sum(1 for value in required if value is None),
        severity=None,
        subscores={},
        risk=risk,
        flags=tuple(flags),
    )
