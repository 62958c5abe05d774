"""Cohort outcomes of treatment courses (clinical-rules.md section 7).

- Cohort: the courses whose first dose lies in the report period (the caller selects them).
- Horizons 2, 4, 8, 12 and 26 weeks after the first dose: the valid score closest to the
  horizon within +-7 days (2 and 4 weeks), +-14 days (8 and 12) or +-28 days (26); at equal
  distance the later score wins, and two scores at the very same time are settled by the
  higher total (the conservative reading; input order never matters). ENG.
- At each horizon: the number of courses with a score; response and remission as section 3
  defines them (clinical.change.change_metrics, with the policy's thresholds), only among the
  courses where they apply, each with a 95 % Wilson interval [Wilson27]; the change from the
  baseline (C - B, negative is improvement) as median and interquartile range.
- Time to response (the first score after the first dose that meets section 3's response) and
  time to confirmed relapse (the first score at which section 5's booster status is
  `consider_booster` / `relapse_confirmed`), in days from the first dose, Kaplan-Meier [KM58],
  censored at the course's last valid score. Only courses where the definition applies
  (baseline at or above the response threshold) and with at least one score after the first
  dose take part. ENG choice of origin: the first dose, for both.
- Courses without any follow-up count in `n_started` and in no rate. ENG.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from kap_outcomes.clinical.booster import booster_signal
from kap_outcomes.clinical.change import ChangeMetrics, change_metrics, course_baseline
from kap_outcomes.clinical.points import ScorePoint
from kap_outcomes.clinical.policy import Instrument, Policy, fraction_of
from kap_outcomes.outcomes.stats import (
    Proportion,
    Spread,
    SurvivalCurve,
    kaplan_meier,
    spread,
    wilson,
)

HORIZON_WEEKS: tuple[int, ...] = (2, 4, 8, 12, 26)
HORIZON_TOLERANCE_DAYS: Mapping[int, int] = {2: 7, 4: 7, 8: 14, 12: 14, 26: 28}
"""Half-width of the window around each horizon, in days. ENG, section 7."""

_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class CourseRecord:
    """One treatment course as the report needs it."""

    course_id: str
    group: str
    """The value of the report's group_by (route, booster count) or "all"."""
    dose_times: tuple[datetime, ...]
    """Dosing and booster sessions of the course; the earliest is the first dose."""
    induction_doses: int
    ended_at: datetime | None = None
    scores: tuple[ScorePoint, ...] = ()
    """The patient's valid scores of the instrument (any course, any order): the baseline
    may precede the course; follow-up is taken after the first dose and up to the course's
    end."""

    @property
    def first_dose_at(self) -> datetime:
        return min(self.dose_times)


@dataclass(frozen=True, slots=True)
class HorizonScore:
    weeks: int
    score: ScorePoint
    change: int | None
    """C - B; None without a baseline."""
    response: bool | None
    remission: bool | None


@dataclass(frozen=True, slots=True)
class CourseOutcome:
    course_id: str
    group: str
    baseline: ScorePoint | None
    followed_up: bool
    """At least one valid score after the first dose (within the course)."""
    horizons: Mapping[int, HorizonScore]
    time_to_response: tuple[float, bool] | None
    """(days, event) for Kaplan-Meier, None when the course does not take part."""
    time_to_relapse: tuple[float, bool] | None


def horizon_score(
    follow_up: Sequence[ScorePoint], first_dose_at: datetime, weeks: int
) -> ScorePoint | None:
    """The score closest to first dose + `weeks` within the horizon's tolerance; ties: the
    later; same time: the higher total. `follow_up` is in time order (`course_outcome`'s):
    the window is found by bisection."""
    target = first_dose_at + timedelta(weeks=weeks)
    tolerance = timedelta(days=HORIZON_TOLERANCE_DAYS[weeks])
    earliest, latest = target - tolerance, target + tolerance  # |t - target| <= tolerance
    inside = follow_up[
        bisect_left(follow_up, earliest, key=_at) : bisect_right(follow_up, latest, key=_at)
    ]
    if not inside:
        return None
    return min(
        inside,
        key=lambda s: (abs(s.administered_at - target), -_ts(s.administered_at), -s.total),
    )


def _at(score: ScorePoint) -> datetime:
    return score.administered_at


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _days(start: datetime, end: datetime) -> float:
    return (end - start) / _DAY


@lru_cache(maxsize=8192)
def _change(instrument: Instrument, baseline: int, current: int, policy: Policy) -> ChangeMetrics:
    """Section 3's change_metrics, remembered: a cohort has at most 28 x 28 (B, C) pairs per
    instrument and policy, and the exact fractions it compares with are costly to rebuild."""
    return change_metrics(instrument, baseline, current, policy)


def course_outcome(
    course: CourseRecord, instrument: Instrument, policy: Policy, as_of: datetime
) -> CourseOutcome:
    """Everything the report counts of one course, as of `as_of` (later data ignored)."""
    first_dose = course.first_dose_at
    end = as_of if course.ended_at is None else min(as_of, course.ended_at)
    ordered = sorted(course.scores, key=lambda s: (s.administered_at, -s.total, s.assessment_id))
    ordered = [s for s in ordered if s.administered_at <= as_of]
    before_dose = [s for s in ordered if s.administered_at <= first_dose]  # the candidates
    baseline = course_baseline(before_dose, first_dose_at=first_dose, policy=policy)
    follow_up = [s for s in ordered if first_dose < s.administered_at <= end]
    thresholds = policy.thresholds_for(instrument)

    horizons: dict[int, HorizonScore] = {}
    for weeks in HORIZON_WEEKS:
        score = horizon_score(follow_up, first_dose, weeks)
        if score is None:
            continue
        if baseline is None:
            horizons[weeks] = HorizonScore(weeks, score, None, None, None)
            continue
        metrics = _change(instrument, baseline.total, score.total, policy)
        horizons[weeks] = HorizonScore(
            weeks, score, metrics.points, metrics.response, metrics.remission
        )

    to_response: tuple[float, bool] | None = None
    to_relapse: tuple[float, bool] | None = None
    applies = baseline is not None and baseline.total >= thresholds.response_min_baseline
    if applies and follow_up and baseline is not None:
        last = _days(first_dose, follow_up[-1].administered_at)
        to_response = (last, False)
        responded_at: datetime | None = None
        for score in follow_up:
            if _change(instrument, baseline.total, score.total, policy).response:
                responded_at = score.administered_at
                to_response = (_days(first_dose, responded_at), True)
                break
        to_relapse = (last, False)
        relapse_at = _first_confirmed_relapse(
            course, instrument, ordered, follow_up, baseline, responded_at, policy
        )
        if relapse_at is not None:
            to_relapse = (_days(first_dose, relapse_at), True)
    return CourseOutcome(
        course_id=course.course_id,
        group=course.group,
        baseline=baseline,
        followed_up=bool(follow_up),
        horizons=horizons,
        time_to_response=to_response,
        time_to_relapse=to_relapse,
    )


def _first_confirmed_relapse(
    course: CourseRecord,
    instrument: Instrument,
    scores: Sequence[ScorePoint],
    follow_up: Sequence[ScorePoint],
    baseline: ScorePoint,
    responded_at: datetime | None,
    policy: Policy,
) -> datetime | None:
    """The first time at which section 5's status (booster_signal itself) becomes
    `consider_booster` (relapse_confirmed), evaluated at each score time.

    booster_signal is asked only where it could say so: the course has responded by then,
    a score at that time is a hit (>= the relapse threshold and above the lost fraction of
    B), and the consecutive hits up to it span at least the confirmation days. Those are
    necessary conditions (the window since the latest dose is a tail of the follow-up), so
    the answer is the same as asking at every score; at one time with hits and non-hits the
    run is taken to start there (the widest the signal's own order could make it)."""
    if responded_at is None:
        return None
    minimum = policy.thresholds_for(instrument).relapse_min_score
    above = fraction_of(policy.response_lost_fraction, baseline.total)
    min_days = policy.relapse_confirmation_min_days
    run_start: datetime | None = None
    i = 0
    while i < len(follow_up):
        moment = follow_up[i].administered_at
        hits = misses = 0
        while i < len(follow_up) and follow_up[i].administered_at == moment:
            if follow_up[i].total >= minimum and follow_up[i].total > above:
                hits += 1
            else:
                misses += 1
            i += 1
        if not hits:
            run_start = None
            continue
        if misses or run_start is None:
            run_start = moment
        if (moment - run_start).days < min_days or moment < responded_at:
            continue
        result = booster_signal(
            scores=scores,
            instrument=instrument,
            dose_times=course.dose_times,
            induction_doses=course.induction_doses,
            baseline=baseline,
            now=moment,
            policy=policy,
        )
        if result.status == "consider_booster":
            return moment
    return None


@dataclass(frozen=True, slots=True)
class HorizonSummary:
    weeks: int
    window_days: int
    n_scored: int
    response: Proportion
    remission: Proportion | None
    """None for an instrument without remission (GAD-7: section 3)."""
    change: Spread


@dataclass(frozen=True, slots=True)
class CohortSummary:
    group: str
    n_started: int
    n_followed_up: int
    horizons: tuple[HorizonSummary, ...]
    time_to_response: SurvivalCurve
    time_to_relapse: SurvivalCurve


def summarise(
    outcomes: Iterable[CourseOutcome], instrument: Instrument, policy: Policy, group: str = "all"
) -> CohortSummary:
    """The counts, rates, intervals, spreads and curves of one cohort (or one group)."""
    items = list(outcomes)
    has_remission = policy.thresholds_for(instrument).remission_below is not None
    horizons = []
    for weeks in HORIZON_WEEKS:
        scored = [o.horizons[weeks] for o in items if weeks in o.horizons]
        responses = [h.response for h in scored if h.response is not None]
        remissions = [h.remission for h in scored if h.remission is not None]
        changes = [float(h.change) for h in scored if h.change is not None]
        horizons.append(
            HorizonSummary(
                weeks=weeks,
                window_days=HORIZON_TOLERANCE_DAYS[weeks],
                n_scored=len(scored),
                response=wilson(sum(responses), len(responses)),
                remission=wilson(sum(remissions), len(remissions)) if has_remission else None,
                change=spread(changes),
            )
        )
    return CohortSummary(
        group=group,
        n_started=len(items),
        n_followed_up=sum(1 for o in items if o.followed_up),
        horizons=tuple(horizons),
        time_to_response=kaplan_meier(
            o.time_to_response for o in items if o.time_to_response is not None
        ),
        time_to_relapse=kaplan_meier(
            o.time_to_relapse for o in items if o.time_to_relapse is not None
        ),
    )


@dataclass(frozen=True, slots=True)
class CohortReport:
    overall: CohortSummary
    groups: tuple[CohortSummary, ...] = field(default=())


def cohort_report(
    courses: Iterable[CourseRecord],
    instrument: Instrument,
    policy: Policy,
    as_of: datetime,
    grouped: bool = False,
) -> CohortReport:
    """The whole report: every course, and per group when `grouped` (groups sorted)."""
    outcomes = [course_outcome(c, instrument, policy, as_of) for c in courses]
    overall = summarise(outcomes, instrument, policy)
    if not grouped:
        return CohortReport(overall=overall)
    by_group: dict[str, list[CourseOutcome]] = {}
    for outcome in outcomes:
        by_group.setdefault(outcome.group, []).append(outcome)
    groups = tuple(
        summarise(by_group[name], instrument, policy, group=name)
        for name in sorted(by_group, key=_group_order)
    )
    return CohortReport(overall=overall, groups=groups)


def _group_order(name: str) -> tuple[int, int, str]:
    """Numbers in numeric order (booster counts), then names."""
    return (0, int(name), "") if name.isdigit() else (1, 0, name)
