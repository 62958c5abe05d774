"""Change between a baseline B and a later score C (clinical-rules.md section 3)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from kap_outcomes.clinical.points import ScorePoint, chronological
from kap_outcomes.clinical.policy import Instrument, Policy, fraction_of


def course_baseline(
    scores: Iterable[ScorePoint], *, first_dose_at: datetime | None, policy: Policy
) -> ScorePoint | None:
    """The baseline of a treatment course, or None.

    With a first dose: the latest valid score taken at or before it and no more than
    `policy.baseline_lookback_days` before it (ENG, section 3), linked to the course or not.
    Without a dose (or without a course): the first valid score. The caller passes the
    scores that qualify: the patient's, or the current course's when there is one.
    """
    ordered = chronological(scores)
    if first_dose_at is None:
        return ordered[0] if ordered else None
    earliest = first_dose_at - timedelta(days=policy.baseline_lookback_days)
    eligible = [s for s in ordered if earliest <= s.administered_at <= first_dose_at]
    return eligible[-1] if eligible else None


@dataclass(frozen=True, slots=True)
class ChangeMetrics:
    """Section 3 metrics. `response`/`remission` are None when not applicable, never False."""

    points: int
    """C - B: negative is improvement."""
    percent: float | None
    """100 x (C - B) / B to 1 decimal (half away from zero); None when B is 0."""
    mcid_met: bool
    reliable_improvement: bool
    reliable_deterioration: bool
    response: bool | None
    remission: bool | None
    """PHQ-9 only; None for GAD-7 (not defined) and when B is below the precondition."""
    minimal: bool
    """C is in the minimal band (C < 5); reported for GAD-7 in place of remission."""
    non_caseness: bool
    """C is below caseness (PHQ-9 < 10, GAD-7 < 8). [IAPT]"""


def change_metrics(
    instrument: Instrument, baseline_total: int, current_total: int, policy: Policy
) -> ChangeMetrics:
    """Change from B to C for one instrument.

    MCID [Lowe04] (PHQ-9), [Toussaint20] (GAD-7); reliable change [IAPT] (deterioration by
    symmetry); response and remission [NCQA/MBC], GAD-7 response precondition ENG.
    """
    thresholds = policy.thresholds_for(instrument)
    b, c = baseline_total, current_total
    response: bool | None = None
    if b >= thresholds.response_min_baseline:
        response = b - c >= fraction_of(policy.response_fraction, b)
    remission: bool | None = None
    if (
        thresholds.remission_below is not None
        and thresholds.remission_min_baseline is not None
        and b >= thresholds.remission_min_baseline
    ):
        remission = c < thresholds.remission_below
    return ChangeMetrics(
        points=c - b,
        percent=_percent_change(b, c),
        mcid_met=abs(c - b) >= thresholds.mcid,
        reliable_improvement=b - c >= thresholds.reliable_change,
        reliable_deterioration=c - b >= thresholds.reliable_change,
        response=response,
        remission=remission,
        minimal=c < thresholds.minimal_below,
        non_caseness=c < thresholds.caseness,
    )


def _percent_change(baseline: int, current: int) -> float | None:
    if baseline == 0:
        return None
    exact = Decimal(100 * (current - baseline)) / Decimal(baseline)
    return float(exact.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def episode_outcome(
    first_phq9: int | None,
    last_phq9: int | None,
    first_gad7: int | None,
    last_gad7: int | None,
    policy: Policy,
) -> tuple[bool | None, bool | None]:
    """(recovery, reliable_recovery) from the first and latest valid pair. [IAPT]

    recovery: a case at the start (PHQ-9 >= 10 or GAD-7 >= 8) and no case at the end
    (PHQ-9 < 10 and GAD-7 < 8); None when not a case at the start. reliable_recovery:
    recovery, reliable improvement on at least one measure and reliable deterioration on
    neither; None whenever recovery is None.

    Like IAPT, both measures must be paired (a first and a latest score of each): caseness
    at the end cannot be judged from one measure, so with any of the four missing both
    results are None ("not computable"), never a guess from the other instrument.
    """
    if first_phq9 is None or last_phq9 is None or first_gad7 is None or last_gad7 is None:
        return None, None
    phq9, gad7 = policy.phq9, policy.gad7
    if first_phq9 < phq9.caseness and first_gad7 < gad7.caseness:
        return None, None
    recovery = last_phq9 < phq9.caseness and last_gad7 < gad7.caseness
    phq9_change = change_metrics("phq9", first_phq9, last_phq9, policy)
    gad7_change = change_metrics("gad7", first_gad7, last_gad7, policy)
    improved = phq9_change.reliable_improvement or gad7_change.reliable_improvement
    deteriorated = phq9_change.reliable_deterioration or gad7_change.reliable_deterioration
    return recovery, recovery and improved and not deteriorated
