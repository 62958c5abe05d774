"""Every threshold of clinical-rules.md sections 3-5, in one versionable value.

A clinic may tune any of them; the service stores `policy_to_dict(policy)` as a version and
every computed signal names the version that produced it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from fractions import Fraction
from functools import lru_cache
from typing import Any, Literal, get_type_hints

Instrument = Literal["phq9", "gad7"]

INSTRUMENTS: tuple[Instrument, ...] = ("phq9", "gad7")
MAX_TOTAL: Mapping[Instrument, int] = {"phq9": 27, "gad7": 21}  # [Kroenke01], [Spitzer06]


@dataclass(frozen=True, slots=True)
class InstrumentPolicy:
    """Point thresholds of one instrument. A score "meets" a cut-off as documented per field."""

    mcid: int
    """|C - B| >= mcid is a minimal clinically important difference. [Lowe04], [Toussaint20]"""
    reliable_change: int
    """B - C >= this is reliable improvement, C - B >= this reliable deterioration. [IAPT]"""
    caseness: int
    """A score >= caseness is a case; below it is non-caseness. [IAPT]"""
    response_min_baseline: int
    """Response is defined only when B >= this. [NCQA/MBC]; GAD-7 value ENG."""
    remission_min_baseline: int | None
    """Remission is defined only when B >= this; None: remission not defined. [NCQA/MBC]"""
    remission_below: int | None
    """Remission is C < this; None for an instrument without remission. [NCQA/MBC]"""
    minimal_below: int
    """C < this is the `minimal` severity band. [Kroenke01], [Spitzer06]"""
    relapse_min_score: int
    """A booster-signal hit needs a score >= this (caseness again). ENG, section 5."""
    rise_from_nadir: int
    """Latest - nadir >= this puts a patient on watch (the MCID). ENG, section 5."""


PHQ9_POLICY = InstrumentPolicy(
    mcid=5,
    reliable_change=6,
    caseness=10,
    response_min_baseline=10,
    remission_min_baseline=10,
    remission_below=5,
    minimal_below=5,
    relapse_min_score=10,
    rise_from_nadir=5,
)

GAD7_POLICY = InstrumentPolicy(
    mcid=4,
    reliable_change=4,
    caseness=8,
    response_min_baseline=8,
    remission_min_baseline=None,
    remission_below=None,
    minimal_below=5,
    relapse_min_score=8,
    rise_from_nadir=4,
)


@dataclass(frozen=True, slots=True)
class Policy:
    """All tunable thresholds of sections 3-5; defaults are the published/ENG values."""

    phq9: InstrumentPolicy = PHQ9_POLICY
    gad7: InstrumentPolicy = GAD7_POLICY
    # Section 3: change and baseline.
    response_fraction: float = 0.5
    """Response is (B - C) / B >= this. [NCQA/MBC]"""
    baseline_lookback_days: int = 30
    """The course baseline may be at most this many days before the first dose. ENG"""
    # Section 4: trend.
    trend_min_scores: int = 3
    trend_min_span_days: int = 14
    trend_window_scores: int = 5
    trend_window_days: int = 56
    ewma_alpha: float = 0.5
    # Section 5: booster-need signal.
    induction_doses: int = 6
    """Default for a course that does not set its own. ENG, after [Murrough13]"""
    response_lost_fraction: float = 0.5
    """A hit needs s > this x B (the 50 % response lost). ENG"""
    relapse_confirmation_min_scores: int = 2
    relapse_confirmation_min_days: int = 5
    """Consecutive hits must span at least this many days to confirm. ENG, [NCT04007367]"""
    gains_half_lost_fraction: float = 0.5
    """Watch when s - N >= this x (B - N). ENG"""
    # Section 5: measurement cadence.
    cadence_early_period_days: int = 56
    cadence_early_interval_days: int = 7
    cadence_late_interval_days: int = 14

    def thresholds_for(self, instrument: Instrument) -> InstrumentPolicy:
        """The point thresholds of `instrument` ("phq9" or "gad7")."""
        if instrument == "phq9":
            return self.phq9
        if instrument == "gad7":
            return self.gad7
        raise ValueError(f"unknown instrument {instrument!r}")


DEFAULT_POLICY = Policy()


@lru_cache(maxsize=256)
def _exact(fraction: float) -> Fraction:
    """0.3 as 3/10 (its shortest decimal form), not as the binary double nearest to it."""
    return Fraction(str(fraction))


def fraction_of(fraction: float, value: int) -> Fraction:
    """`fraction` x `value`, exact: 0.3 is read as 3/10, so 0.3 x 10 is exactly 3.

    A policy holds a handful of fractions and the reports ask for them per course: each is
    read from its decimal text once (``_exact``), not at every call."""
    return _exact(fraction) * value


# --- validation --------------------------------------------------------------------------

_FRACTION_FIELDS = (
    "response_fraction",
    "ewma_alpha",
    "response_lost_fraction",
    "gains_half_lost_fraction",
)


def policy_problems(policy: Policy) -> list[tuple[str, str]]:
    """Every nonsensical value as (field path, detail); an empty list means usable."""
    problems: list[tuple[str, str]] = []

    def at_least(name: str, value: int, minimum: int) -> None:
        if value < minimum:
            problems.append((name, f"must be at least {minimum}, got {value}"))

    for instrument in INSTRUMENTS:
        problems.extend(_instrument_problems(instrument, policy.thresholds_for(instrument)))
    for name in _FRACTION_FIELDS:
        value = getattr(policy, name)
        if not (math.isfinite(value) and 0 < value <= 1):
            problems.append((name, f"must be in (0, 1], got {value}"))
    at_least("baseline_lookback_days", policy.baseline_lookback_days, 0)
    at_least("trend_min_scores", policy.trend_min_scores, 2)
    at_least("trend_min_span_days", policy.trend_min_span_days, 1)
    at_least("trend_window_scores", policy.trend_window_scores, policy.trend_min_scores)
    at_least("trend_window_days", policy.trend_window_days, policy.trend_min_span_days)
    at_least("induction_doses", policy.induction_doses, 1)
    at_least("relapse_confirmation_min_scores", policy.relapse_confirmation_min_scores, 2)
    at_least("relapse_confirmation_min_days", policy.relapse_confirmation_min_days, 0)
    at_least("cadence_early_period_days", policy.cadence_early_period_days, 0)
    at_least("cadence_early_interval_days", policy.cadence_early_interval_days, 1)
    at_least("cadence_late_interval_days", policy.cadence_late_interval_days, 1)
    return problems


def _instrument_problems(
    instrument: Instrument, thresholds: InstrumentPolicy
) -> list[tuple[str, str]]:
    maximum = MAX_TOTAL[instrument]
    problems: list[tuple[str, str]] = []
    for field in fields(InstrumentPolicy):
        value = getattr(thresholds, field.name)
        if value is None:
            continue
        if not 1 <= value <= maximum:
            detail = f"must be between 1 and {maximum} (the {instrument} range), got {value}"
            problems.append((f"{instrument}.{field.name}", detail))
    if (thresholds.remission_below is None) != (thresholds.remission_min_baseline is None):
        detail = "remission_below and remission_min_baseline must both be set or both null"
        problems.append((f"{instrument}.remission_below", detail))
    return problems


# --- storage -----------------------------------------------------------------------------


class PolicyError(ValueError):
    """A stored or submitted policy that cannot be used; `problems` lists each field."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{name}: {detail}" for name, detail in problems))


def policy_to_dict(policy: Policy) -> dict[str, object]:
    """A plain JSON-able dict holding every field (nested per instrument)."""
    return asdict(policy)


def policy_from_dict(data: Mapping[str, object], *, base: Policy = DEFAULT_POLICY) -> Policy:
    """Read `policy_to_dict` output back. Keys left out keep `base`'s value.

    Raises PolicyError (a ValueError) on unknown keys, wrong types or any
    `policy_problems`; the error's `problems` lists them all.
    """
    problems: list[tuple[str, str]] = []
    values = _read_fields(Policy, data, base, "", problems)
    if values is None:
        raise PolicyError(problems)
    policy = Policy(**values)
    problems = policy_problems(policy)
    if problems:
        raise PolicyError(problems)
    return policy


def _read_fields(
    cls: type[Policy] | type[InstrumentPolicy],
    data: object,
    base: Policy | InstrumentPolicy,
    prefix: str,
    problems: list[tuple[str, str]],
) -> dict[str, Any] | None:
    """The constructor arguments of `cls` from `data`, or None after adding problems."""
    if not isinstance(data, Mapping):
        problems.append((prefix.rstrip(".") or "policy", "must be an object"))
        return None
    found = len(problems)
    hints = get_type_hints(cls)
    problems.extend((f"{prefix}{key}", "unknown field") for key in data if key not in hints)
    values: dict[str, Any] = {}
    for name, hint in hints.items():
        if name not in data:
            values[name] = getattr(base, name)
            continue
        raw, path = data[name], f"{prefix}{name}"
        if hint is InstrumentPolicy:
            nested = _read_fields(InstrumentPolicy, raw, getattr(base, name), f"{path}.", problems)
            values[name] = None if nested is None else InstrumentPolicy(**nested)
        elif hint is float and isinstance(raw, int | float) and not isinstance(raw, bool):
            values[name] = float(raw)
        elif hint is float:
            problems.append((path, "must be a number"))
        elif raw is None and hint == int | None:
            values[name] = None
        elif isinstance(raw, bool) or not isinstance(raw, int):
            problems.append((path, "must be an integer" + ("" if hint is int else " or null")))
        else:
            values[name] = raw
    return None if len(problems) > found else values
