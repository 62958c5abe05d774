"""Trend of one instrument's scores (clinical-rules.md section 4).

Arithmetic is exact (fractions of days, medians of fractions) so a label never flips on a
floating-point rounding at the MCID boundary; results are converted to float at the end.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from itertools import combinations
from typing import Literal

from kap_outcomes.clinical.points import ScorePoint, chronological
from kap_outcomes.clinical.policy import Instrument, Policy

TrendLabel = Literal["improving", "worsening", "stable", "insufficient_data"]

_MICROSECONDS_PER_DAY = 86_400_000_000


@dataclass(frozen=True, slots=True)
class TrendResult:
    label: TrendLabel
    slope_per_week: float | None
    """Theil-Sen slope x 7, in points per week; None when insufficient_data."""
    projected_change: float | None
    """Slope x days between the window's first and last score; None when insufficient_data."""
    window: tuple[ScorePoint, ...]
    """The scores the trend used (or would use), oldest first."""


def days_between(start: datetime, end: datetime) -> Fraction:
    """Exact fractional days from start to end."""
    return Fraction((end - start) // timedelta(microseconds=1), _MICROSECONDS_PER_DAY)


def theil_sen_slope(points: Sequence[tuple[Fraction, Fraction]]) -> Fraction | None:
    """Median of all pairwise slopes of (x, y) points; pairs with equal x are skipped.

    [Theil-Sen] Theil 1950, Sen 1968: breakdown point about 29 %, so one aberrant score in
    five cannot flip the label. None when no two points differ in x.
    """
    slopes = [(y2 - y1) / (x2 - x1) for (x1, y1), (x2, y2) in combinations(points, 2) if x1 != x2]
    return statistics.median(slopes) if slopes else None


def trend_window(scores: Iterable[ScorePoint], policy: Policy) -> tuple[ScorePoint, ...]:
    """The latest `trend_window_scores` (5) valid scores taken within `trend_window_days`
    (56) before the latest one, oldest first. ENG, section 4."""
    ordered = chronological(scores)
    if not ordered:
        return ()
    earliest = ordered[-1].administered_at - timedelta(days=policy.trend_window_days)
    recent = [s for s in ordered if s.administered_at >= earliest]
    return tuple(recent[-policy.trend_window_scores :])


def trend(instrument: Instrument, scores: Iterable[ScorePoint], policy: Policy) -> TrendResult:
    """Theil-Sen trend over the window, labelled against the instrument's MCID.

    ENG, section 4: needs >= 3 scores spanning >= 14 days, else insufficient_data.
    projected_change = slope x window span; worsening if >= MCID, improving if <= -MCID
    ([Lowe04] 5 for PHQ-9, [Toussaint20] 4 for GAD-7), else stable.
    """
    window = trend_window(scores, policy)
    insufficient = TrendResult("insufficient_data", None, None, window)
    if len(window) < policy.trend_min_scores:
        return insufficient
    start = window[0].administered_at
    span = days_between(start, window[-1].administered_at)
    if span < policy.trend_min_span_days:
        return insufficient
    slope = theil_sen_slope(
        [(days_between(start, s.administered_at), Fraction(s.total)) for s in window]
    )
    if slope is None:  # unreachable with a positive span, kept for the type checker
        return insufficient
    projected = slope * span
    mcid = policy.thresholds_for(instrument).mcid
    label: TrendLabel = "stable"
    if projected >= mcid:
        label = "worsening"
    elif projected <= -mcid:
        label = "improving"
    return TrendResult(label, float(slope * 7), float(projected), window)


def ewma(values: Sequence[float], alpha: float) -> list[float]:
    """Display smoothing, never used by alerts: s0 = v0, s_i = s_{i-1} + alpha (v_i - s_{i-1}).

    ENG, section 4 (alpha 0.5). Each result lies between the previous smoothed value and
    the new value, so the series stays within [min, max] of the input.
    """
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    smoothed: list[float] = []
    for value in values:
        if not smoothed:
            smoothed.append(float(value))
            continue
        previous = smoothed[-1]
        step = previous + alpha * (value - previous)
        # Clamp away floating-point overshoot: mathematically step is between the two.
        smoothed.append(min(max(step, min(previous, value)), max(previous, value)))
    return smoothed
