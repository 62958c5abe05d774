"""Booster-need signal (clinical-rules.md section 5).

ENG, anchored on published structures: ketamine's effect fades after induction
[Murrough13], [Shiroma14]; maintenance gives the least frequent dosing that keeps response
[Nijs20]; a relapse is confirmed only on two consecutive assessments some days apart
[NCT04007367]. The PHQ-9 status drives the product; the GAD-7 analogue is reported beside
it and never changes the PHQ-9 status.

The signal is computed as of `now`: doses and scores dated after `now` are ignored, so a
past date replays what the signal said then. Output never depends on input order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from fractions import Fraction
from typing import Literal

from kap_outcomes.clinical.points import ScorePoint, chronological
from kap_outcomes.clinical.policy import Instrument, Policy, fraction_of
from kap_outcomes.clinical.trend import trend

BoosterStatus = Literal[
    "not_applicable", "in_induction", "pending", "stable", "watch", "consider_booster"
]
ReasonCode = Literal[
    "no_dosing",
    "in_induction",
    "no_baseline",
    "baseline_below_threshold",
    "awaiting_measure",
    "no_response",
    "relapse_confirmed",
    "relapse_unconfirmed",
    "rise_from_nadir",
    "gains_half_lost",
    "worsening_trend",
    "stable",
]

STATUS_RANK: dict[BoosterStatus, int] = {
    "not_applicable": 0,
    "in_induction": 0,
    "pending": 0,
    "stable": 0,
    "watch": 1,
    "consider_booster": 2,
}
"""How close a status is to consider_booster (the caseload sorts on it)."""

_LABEL: dict[Instrument, str] = {"phq9": "PHQ-9", "gad7": "GAD-7"}


@dataclass(frozen=True, slots=True)
class Reason:
    code: ReasonCode
    detail: str
    """One sentence for a clinician, with the scores, dates and thresholds used."""


@dataclass(frozen=True, slots=True)
class BoosterSignal:
    instrument: Instrument
    status: BoosterStatus
    reasons: tuple[Reason, ...]
    """One reason, except `watch`, which lists every watch reason that holds."""
    baseline: int | None
    """B, the course baseline total."""
    nadir: int | None
    """N, the lowest score since the latest dose; None when there is none."""
    latest: int | None
    """The latest valid score as of `now`, whatever the status."""
    days_since_last_dose: int | None
    """Whole days (24-hour periods) from the latest dose to `now`."""
    scores_used: tuple[ScorePoint, ...]
    """The scores the status was decided on, oldest first: W (the window since the latest
    dose) for pending/stable/watch/consider_booster, P (every score since induction) for
    no_response, none before that."""


def booster_signal(
    *,
    scores: Sequence[ScorePoint],
    instrument: Instrument = "phq9",
    dose_times: Sequence[datetime],
    induction_doses: int | None = None,
    baseline: ScorePoint | None,
    now: datetime,
    policy: Policy,
    zone: tzinfo = UTC,
) -> BoosterSignal:
    """The PHQ-9 booster-need status, first match wins (section 5 table); with ``instrument``
    "gad7" its GAD-7 analogue: hit = GAD-7 >= 8 and 50 % lost, rise = +4, trend against the
    GAD-7 MCID of 4, reported separately (it never changes the PHQ-9 status).

    scores: the patient's valid scores of the instrument, any order. dose_times: the current
    course's `dosing` and `booster` sessions, any order. induction_doses: the course's own
    value, else `policy.induction_doses`. baseline: `change.course_baseline` of the course.
    zone: the clinic's time zone, for the dates the reason sentences show (section 8);
    intervals stay elapsed time whatever it is.
    """
    return _signal(instrument, scores, dose_times, induction_doses, baseline, now, policy, zone)


def _signal(
    instrument: Instrument,
    scores: Sequence[ScorePoint],
    dose_times: Sequence[datetime],
    induction_doses: int | None,
    baseline: ScorePoint | None,
    now: datetime,
    policy: Policy,
    zone: tzinfo,
) -> BoosterSignal:
    if induction_doses is not None and induction_doses < 1:
        raise ValueError(f"induction_doses must be at least 1, got {induction_doses}")
    name = _LABEL[instrument]
    thresholds = policy.thresholds_for(instrument)
    needed = policy.induction_doses if induction_doses is None else induction_doses
    doses = sorted(t for t in dose_times if t <= now)
    ordered = tuple(s for s in chronological(scores) if s.administered_at <= now)
    b = baseline.total if baseline is not None else None

    def result(
        status: BoosterStatus,
        reasons: Sequence[Reason],
        used: tuple[ScorePoint, ...] = (),
        nadir: ScorePoint | None = None,
    ) -> BoosterSignal:
        return BoosterSignal(
            instrument=instrument,
            status=status,
            reasons=tuple(reasons),
            baseline=b,
            nadir=nadir.total if nadir is not None else None,
            latest=ordered[-1].total if ordered else None,
            days_since_last_dose=(now - doses[-1]).days if doses else None,
            scores_used=used,
        )

    if not doses:
        detail = "No dosing or booster session in this course yet."
        return result("not_applicable", [Reason("no_dosing", detail)])
    last_dose = doses[-1]
    if len(doses) < needed:
        detail = (
            f"{len(doses)} of {needed} induction doses given (latest on "
            f"{_day(last_dose, zone)}); the booster signal starts when induction is complete."
        )
        return result("in_induction", [Reason("in_induction", detail)])
    if baseline is None:
        detail = (
            f"No baseline {name}: none valid at or within {policy.baseline_lookback_days} "
            f"days before the first dose on {_day(doses[0], zone)}."
        )
        return result("not_applicable", [Reason("no_baseline", detail)])
    b = baseline.total
    if b < thresholds.response_min_baseline:
        detail = (
            f"Baseline {name} {b} on {_day(baseline.administered_at, zone)} is below "
            f"{thresholds.response_min_baseline}, so response and relapse are not defined."
        )
        return result("not_applicable", [Reason("baseline_below_threshold", detail)])

    induction_done = doses[needed - 1]
    after_induction = tuple(s for s in ordered if s.administered_at > induction_done)
    window = tuple(s for s in after_induction if s.administered_at > last_dose)
    if not window:
        since = _days((now - last_dose).days)
        detail = f"No {name} since the latest dose on {_day(last_dose, zone)} ({since} ago)."
        return result("pending", [Reason("awaiting_measure", detail)])

    nadir = min(window, key=lambda s: s.total)  # earliest of equal minima
    response_at_most = b - fraction_of(policy.response_fraction, b)
    best = min(after_induction, key=lambda s: s.total)
    if best.total > response_at_most:
        detail = (
            f"No {name} since induction completed on {_day(induction_done, zone)} is at or "
            f"below {_num(response_at_most)} (a {_pct(policy.response_fraction)} drop from "
            f"the baseline {b}); the lowest "
            f"is {best.total} on {_day(best.administered_at, zone)}. A treatment-plan question, "
            f"not a booster question."
        )
        reason = Reason("no_response", detail)
        return result("not_applicable", [reason], after_induction, nadir)

    hit = _HitRule(thresholds.relapse_min_score, policy.response_lost_fraction, b)
    run = _trailing_run(window, hit)
    if len(run) >= policy.relapse_confirmation_min_scores:
        span_days = (run[-1].administered_at - run[0].administered_at).days
        if span_days >= policy.relapse_confirmation_min_days:
            listed = ", ".join(f"{s.total} on {_day(s.administered_at, zone)}" for s in run)
            detail = (
                f"Consecutive {name} scores {listed} are all {hit.describe()}, spanning "
                f"{_days(span_days)} (confirmation needs at least "
                f"{_days(policy.relapse_confirmation_min_days)})."
            )
            return result("consider_booster", [Reason("relapse_confirmed", detail)], window, nadir)

    watch = _watch_reasons(instrument, window, nadir, b, hit, policy, zone)
    if watch:
        return result("watch", watch, window, nadir)
    latest = window[-1]
    rise = latest.total - nadir.total
    nadir_text = _nadir_text(nadir, zone)
    position = f"{rise} above {nadir_text}" if rise else f"at {nadir_text}"
    detail = (
        f"{_score_text(instrument, latest, zone)} is {position}; no watch rule holds since the "
        f"latest dose on {_day(last_dose, zone)}."
    )
    return result("stable", [Reason("stable", detail)], window, nadir)


@dataclass(frozen=True, slots=True)
class _HitRule:
    """A hit: caseness again (s >= min_score) and the response lost (s > fraction x B)."""

    min_score: int
    lost_fraction: float
    baseline: int

    @property
    def above(self) -> Fraction:
        return fraction_of(self.lost_fraction, self.baseline)

    def __call__(self, score: ScorePoint) -> bool:
        return score.total >= self.min_score and score.total > self.above

    def describe(self) -> str:
        return (
            f"at or above {self.min_score} and above {_num(self.above)} "
            f"({_pct(self.lost_fraction)} of the baseline {self.baseline})"
        )


def _watch_reasons(
    instrument: Instrument,
    window: tuple[ScorePoint, ...],
    nadir: ScorePoint,
    baseline: int,
    hit: _HitRule,
    policy: Policy,
    zone: tzinfo,
) -> list[Reason]:
    """Every `watch` row of the section 5 table that holds for the latest score in W."""
    thresholds = policy.thresholds_for(instrument)
    latest = window[-1]
    latest_text = _score_text(instrument, latest, zone)
    rise = latest.total - nadir.total
    reasons: list[Reason] = []
    if hit(latest):
        detail = (
            f"{latest_text} is {hit.describe()}; a second such score at least "
            f"{_days(policy.relapse_confirmation_min_days)} later would confirm a relapse."
        )
        reasons.append(Reason("relapse_unconfirmed", detail))
    if rise >= thresholds.rise_from_nadir:
        detail = (
            f"{latest_text} is {rise} above {_nadir_text(nadir, zone)} "
            f"(watch from {thresholds.rise_from_nadir})."
        )
        reasons.append(Reason("rise_from_nadir", detail))
    gains = baseline - nadir.total
    half_gains = fraction_of(policy.gains_half_lost_fraction, gains)
    if gains > 0 and rise >= half_gains:
        detail = (
            f"{latest_text} has lost {rise} of the {gains} points gained from the "
            f"baseline {baseline} to {_nadir_text(nadir, zone)} (watch from {_num(half_gains)})."
        )
        reasons.append(Reason("gains_half_lost", detail))
    window_trend = trend(instrument, window, policy)
    if window_trend.label == "worsening":
        detail = (
            f"The {_LABEL[instrument]} trend over {len(window_trend.window)} scores since "
            f"{_day(window_trend.window[0].administered_at, zone)} is "
            f"{window_trend.slope_per_week:+.1f} points a week, a projected rise of "
            f"{window_trend.projected_change:.1f} (watch from {thresholds.mcid})."
        )
        reasons.append(Reason("worsening_trend", detail))
    return reasons


def _trailing_run(
    window: tuple[ScorePoint, ...], is_hit: Callable[[ScorePoint], bool]
) -> tuple[ScorePoint, ...]:
    """The latest scores that are all hits, up to the most recent non-hit."""
    start = len(window)
    while start > 0 and is_hit(window[start - 1]):
        start -= 1
    return window[start:]


def _score_text(instrument: Instrument, score: ScorePoint, zone: tzinfo) -> str:
    return f"{_LABEL[instrument]} {score.total} on {_day(score.administered_at, zone)}"


def _nadir_text(nadir: ScorePoint, zone: tzinfo) -> str:
    return f"the nadir of {nadir.total} on {_day(nadir.administered_at, zone)}"


def _day(moment: datetime, zone: tzinfo) -> str:
    """The calendar date of an instant in the clinic's time zone (section 8): a score taken at
    20:00 on 27 November in California is shown as 27 November, not the UTC date."""
    return moment.astimezone(zone).date().isoformat()


def _days(count: int) -> str:
    return f"{count} day" if count == 1 else f"{count} days"


def _pct(fraction: float) -> str:
    return f"{fraction * 100:g} %"


def _num(value: Fraction) -> str:
    """11 rather than 11.0, 10.5 as is."""
    return str(value.numerator) if value.denominator == 1 else f"{float(value):g}"
