"""Statistics of the cohort reports: Wilson score interval, Kaplan-Meier, quantiles.

- Wilson score interval for a binomial proportion [Wilson27]: Wilson EB. Probable inference,
  the law of succession, and statistical inference. J Am Stat Assoc 1927;22:209-212.
  Compared with published values in Newcombe RG. Two-sided confidence intervals for the
  single proportion. Stat Med 1998;17:857-872 (method 3).
- Kaplan-Meier product-limit estimator [KM58]: Kaplan EL, Meier P. Nonparametric estimation
  from incomplete observations. J Am Stat Assoc 1958;53:457-481. At a time with both events
  and censorings, the events come first (the censored are still at risk at that time), as
  in the original paper.
- Quantiles: Hyndman & Fan definition 7 (linear interpolation between order statistics,
  h = (n - 1) p; the default of R and NumPy). Hyndman RJ, Fan Y. Sample quantiles in
  statistical packages. Am Stat 1996;50:361-365.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Z_95 = 1.959964
"""The 0.975 quantile of the standard normal distribution (two-sided 95 %)."""


@dataclass(frozen=True, slots=True)
class Proportion:
    n: int
    events: int
    rate: float | None
    """events / n; None when n is 0 (no rate, never 0)."""
    ci_low: float | None
    ci_high: float | None


def wilson(events: int, n: int, z: float = Z_95) -> Proportion:
    """The proportion events / n with its Wilson score interval [Wilson27].

    centre = (p + z^2 / 2n) / (1 + z^2 / n); half-width = z / (1 + z^2 / n) x
    sqrt(p (1 - p) / n + z^2 / 4n^2). With n = 0 there is neither a rate nor an interval.
    """
    if n < 0 or events < 0 or events > n:
        raise ValueError(f"need 0 <= events <= n, got {events} of {n}")
    if n == 0:
        return Proportion(n=0, events=0, rate=None, ci_low=None, ci_high=None)
    p = events / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # The interval always contains p; clamp only the rounding noise at the ends.
    low = 0.0 if events == 0 else max(0.0, min(p, centre - half))
    high = 1.0 if events == n else min(1.0, max(p, centre + half))
    return Proportion(n=n, events=events, rate=p, ci_low=low, ci_high=high)


def quantile(values: Sequence[float], p: float) -> float:
    """Hyndman-Fan definition 7: h = (n - 1) p, interpolate between the order statistics
    around h (0-based). Raises on an empty sequence."""
    if not values:
        raise ValueError("quantile of no values")
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")
    ordered = sorted(values)
    h = (len(ordered) - 1) * p
    below = math.floor(h)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (h - below) * (ordered[above] - ordered[below])


@dataclass(frozen=True, slots=True)
class Spread:
    n: int
    median: float | None
    q1: float | None
    q3: float | None


def spread(values: Sequence[float]) -> Spread:
    """Median and interquartile range (definition 7); None for no values."""
    if not values:
        return Spread(n=0, median=None, q1=None, q3=None)
    return Spread(
        n=len(values),
        median=quantile(values, 0.5),
        q1=quantile(values, 0.25),
        q3=quantile(values, 0.75),
    )


@dataclass(frozen=True, slots=True)
class SurvivalStep:
    time: float
    at_risk: int
    events: int
    censored: int
    survival: float
    """S(t) just after `time`: the product of (1 - d_i / n_i) over event times up to t."""


@dataclass(frozen=True, slots=True)
class SurvivalCurve:
    n: int
    events: int
    steps: tuple[SurvivalStep, ...]
    """One step per distinct time with an event or a censoring, in time order."""
    median: float | None
    """The smallest time with S(t) <= 0.5; None when the curve never gets there."""


def kaplan_meier(observations: Iterable[tuple[float, bool]]) -> SurvivalCurve:
    """Kaplan-Meier product-limit estimate [KM58] from (time, event) pairs; event False
    is a censoring. Events precede censorings at equal times. Input order never matters."""
    ordered = sorted(observations)
    at_risk = len(ordered)
    total_events = sum(1 for _, event in ordered if event)
    survival = 1.0
    steps: list[SurvivalStep] = []
    median: float | None = None
    i = 0
    while i < len(ordered):
        time = ordered[i][0]
        events = censored = 0
        while i < len(ordered) and ordered[i][0] == time:
            if ordered[i][1]:
                events += 1
            else:
                censored += 1
            i += 1
        if events:
            survival *= 1 - events / at_risk
        steps.append(SurvivalStep(time, at_risk, events, censored, survival))
        if median is None and events and survival <= 0.5:
            median = time
        at_risk -= events + censored
    return SurvivalCurve(n=len(ordered), events=total_events, steps=tuple(steps), median=median)
