from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kap_outcomes.clinical.booster import (
    STATUS_RANK,
    BoosterSignal,
    ReasonCode,
    booster_signal,
)
from kap_outcomes.clinical.points import ScorePoint
from kap_outcomes.clinical.policy import DEFAULT_POLICY

DAY0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def at(day: float) -> datetime:
    return DAY0 + timedelta(days=day)


# Six induction doses over two weeks; induction completes on day -1.
INDUCTION = [at(day) for day in (-15, -13, -10, -8, -5, -1)]
HOLDS_FOR_DAYS = 3  # `now` defaults to this long after the latest event


def points(pairs: Sequence[tuple[float, int]]) -> list[ScorePoint]:
    return [ScorePoint(f"s{i:02d}", at(day), total) for i, (day, total) in enumerate(pairs)]


def signal(
    pairs: Sequence[tuple[float, int]],
    *,
    b: int | None = 22,
    doses: Sequence[datetime] = INDUCTION,
    now: datetime | None = None,
    induction_doses: int | None = None,
) -> BoosterSignal:
    scores = points(pairs)
    if now is None:
        now = max([s.administered_at for s in scores] + list(doses) + [DAY0])
    return booster_signal(
        scores=scores,
        dose_times=doses,
        induction_doses=induction_doses,
        baseline=None if b is None else ScorePoint("baseline", at(-20), b),
        now=now,
        policy=DEFAULT_POLICY,
    )


def codes(result: BoosterSignal) -> tuple[str, ...]:
    return tuple(reason.code for reason in result.reasons)


# --- section 5 worked example (B = 22, induction complete on day -1) ----------------------

WORKED = [
    ([(0, 6), (7, 7)], "stable", ("stable",)),
    # rise 5 from nadir 6; the Theil-Sen trend (+2.5/week, projected +5) also holds and a
    # watch lists every reason that holds.
    ([(0, 6), (7, 7), (14, 11)], "watch", ("rise_from_nadir", "worsening_trend")),
    (
        [(0, 6), (7, 7), (14, 11), (21, 13)],
        "watch",
        ("relapse_unconfirmed", "rise_from_nadir", "worsening_trend"),
    ),
    ([(0, 6), (7, 7), (14, 11), (21, 13), (26, 14)], "consider_booster", ("relapse_confirmed",)),
    (
        [(0, 6), (7, 7), (14, 11), (21, 13), (24, 14)],
        "watch",
        ("relapse_unconfirmed", "rise_from_nadir", "gains_half_lost", "worsening_trend"),
    ),
]


@pytest.mark.parametrize(("pairs", "status", "reasons"), WORKED)
def test_worked_example(
    pairs: list[tuple[float, int]], status: str, reasons: tuple[str, ...]
) -> None:
    result = signal(pairs, now=at(pairs[-1][0]))
    assert (result.status, codes(result)) == (status, reasons)
    assert (result.baseline, result.nadir, result.latest) == (22, 6, pairs[-1][1])
    assert result.scores_used == tuple(points(pairs))
    assert result.days_since_last_dose == pairs[-1][0] + 1


def test_worked_example_details_name_scores_and_dates() -> None:
    result = signal([(0, 6), (7, 7), (14, 11), (21, 13), (26, 14)])
    assert result.reasons[0].detail == (
        "Consecutive PHQ-9 scores 13 on 2026-03-22, 14 on 2026-03-27 are all at or above "
        "10 and above 11 (50 % of the baseline 22), spanning 5 days "
        "(confirmation needs at least 5 days)."
    )
    rise = signal([(0, 6), (19, 14)]).reasons[1]
    assert rise.code == "rise_from_nadir"
    assert rise.detail.startswith("PHQ-9 14 on 2026-03-20 is 8 above the nadir of 6 on 2026-03-01")


# --- one row per status and reason of the section 5 table -------------------------------

Pairs = list[tuple[float, int]]
FIRST = [(0.0, 6)]

# (case, PHQ-9 (day, total) pairs, B, doses, status, reason codes)
STATUS_ROWS: list[tuple[str, Pairs, int | None, list[datetime], str, tuple[ReasonCode, ...]]] = [
    ("no dose in the course", FIRST, 22, [], "not_applicable", ("no_dosing",)),
    ("5 of 6 induction doses", FIRST, 22, INDUCTION[:5], "in_induction", ("in_induction",)),
    ("no baseline", FIRST, None, INDUCTION, "not_applicable", ("no_baseline",)),
    ("B < 10", FIRST, 9, INDUCTION, "not_applicable", ("baseline_below_threshold",)),
    ("nothing since the dose", [(-3, 6)], 22, INDUCTION, "pending", ("awaiting_measure",)),
    ("never <= 0.5 x B", [(0, 14), (7, 12)], 22, INDUCTION, "not_applicable", ("no_response",)),
    (
        "two hits 5 days apart",
        [(0, 9), (7, 12), (12, 13)],
        22,
        INDUCTION,
        "consider_booster",
        ("relapse_confirmed",),
    ),
    ("one hit", [(0, 9), (7, 12)], 22, INDUCTION, "watch", ("relapse_unconfirmed",)),
    (
        "two hits 4 days apart",
        [(0, 9), (7, 12), (11, 13)],
        22,
        INDUCTION,
        "watch",
        ("relapse_unconfirmed",),
    ),
    (
        "hits split by a non-hit",
        [(0, 9), (7, 12), (10, 9), (16, 13)],
        22,
        INDUCTION,
        "watch",
        ("relapse_unconfirmed",),
    ),
    ("rise of 5 from the nadir", [(0, 2), (7, 7)], 22, INDUCTION, "watch", ("rise_from_nadir",)),
    ("half the gains lost", [(0, 4), (7, 8)], 12, INDUCTION, "watch", ("gains_half_lost",)),
    (
        "worsening trend (projected exactly +5)",
        [(0, 3), (14, 6), (21, 7), (28, 8), (35, 7)],
        22,
        INDUCTION,
        "watch",
        ("worsening_trend",),
    ),
    ("otherwise", [(0, 6), (7, 7)], 22, INDUCTION, "stable", ("stable",)),
    ("11 is not above 0.5 x 22", [(0, 9), (7, 11)], 22, INDUCTION, "stable", ("stable",)),
]


@pytest.mark.parametrize(
    ("case", "pairs", "b", "doses", "status", "reasons"),
    STATUS_ROWS,
    ids=[row[0] for row in STATUS_ROWS],
)
def test_status_table(
    case: str,
    pairs: Pairs,
    b: int | None,
    doses: list[datetime],
    status: str,
    reasons: tuple[str, ...],
) -> None:
    result = signal(pairs, b=b, doses=doses)
    assert (result.status, codes(result)) == (status, reasons)
    assert all(reason.detail.endswith(".") for reason in result.reasons)


def test_every_reason_code_has_a_row() -> None:
    covered = {code for *_, reasons in STATUS_ROWS for code in reasons}
    assert covered == set(get_args(ReasonCode))


def test_fields_before_the_rule_applies() -> None:
    no_dose = signal([(0, 6)], doses=[])
    assert no_dose.days_since_last_dose is None
    assert (no_dose.baseline, no_dose.nadir, no_dose.latest) == (22, None, 6)
    assert no_dose.scores_used == ()
    induction = signal([(-3, 6)], doses=INDUCTION[:5], now=at(0))
    assert induction.days_since_last_dose == 5
    assert "5 of 6 induction doses" in induction.reasons[0].detail
    no_response = signal([(0, 14), (7, 12)])
    assert no_response.scores_used == tuple(points([(0, 14), (7, 12)]))
    assert no_response.nadir == 12


def test_course_induction_doses_override_the_policy() -> None:
    assert signal([(0, 6)], doses=INDUCTION[:5]).status == "in_induction"
    assert signal([(0, 6)], doses=INDUCTION[:5], induction_doses=5).status == "stable"
    assert signal([(0, 6)], doses=INDUCTION, induction_doses=8).status == "in_induction"
    with pytest.raises(ValueError):
        signal([(0, 6)], induction_doses=0)


def test_a_score_at_the_moment_induction_completes_is_not_after_it() -> None:
    assert signal([(-1, 6)]).status == "pending"


def test_each_booster_starts_a_new_window() -> None:
    before = [(0, 6), (7, 7), (14, 13)]
    with_booster = [*INDUCTION, at(20)]
    pending = signal(before, doses=with_booster, now=at(21))
    assert (pending.status, codes(pending)) == ("pending", ("awaiting_measure",))
    assert pending.days_since_last_dose == 1
    assert pending.latest == 13

    # The nadir is taken in the new window only; response may come from before it.
    after = signal([*before, (22, 9)], doses=with_booster)
    assert (after.status, after.nadir, after.latest) == ("stable", 9, 9)
    assert after.scores_used == tuple(points([*before, (22, 9)])[-1:])


def test_hits_before_a_booster_do_not_confirm_a_relapse() -> None:
    pairs = [(0, 6), (10, 13), (16, 14)]
    assert signal(pairs).status == "consider_booster"
    result = signal([*pairs, (19, 14)], doses=[*INDUCTION, at(17)])
    assert result.status == "watch"
    assert "relapse_unconfirmed" in codes(result)


def test_data_after_now_is_ignored() -> None:
    pairs = [(0, 6), (7, 7), (14, 13), (20, 14)]
    assert signal(pairs, now=at(21)).status == "consider_booster"
    replay = signal(pairs, now=at(10))
    assert (replay.status, replay.latest) == ("stable", 7)
    assert signal(pairs, doses=[*INDUCTION, at(30)], now=at(21)).status == "consider_booster"


# --- GAD-7 analogue: hit = GAD-7 >= 8 and above 0.5 x B, rise = +4 -----------------------

GAD7_ROWS = [
    (16, [(0, 3), (7, 6)], "stable", ("stable",)),
    (16, [(0, 3), (7, 7)], "watch", ("rise_from_nadir",)),
    (16, [(0, 6), (7, 9)], "watch", ("relapse_unconfirmed",)),
    (16, [(0, 6), (7, 8)], "stable", ("stable",)),  # 8 is not above 0.5 x 16
    (16, [(0, 6), (7, 9), (12, 10)], "consider_booster", ("relapse_confirmed",)),
    (16, [(0, 9), (7, 10)], "not_applicable", ("no_response",)),
    (7, [(0, 3)], "not_applicable", ("baseline_below_threshold",)),
]


@pytest.mark.parametrize(("b", "pairs", "status", "reasons"), GAD7_ROWS)
def test_gad7_analogue(
    b: int, pairs: list[tuple[float, int]], status: str, reasons: tuple[str, ...]
) -> None:
    result = booster_signal(
        instrument="gad7",
        scores=points(pairs),
        dose_times=INDUCTION,
        baseline=ScorePoint("baseline", at(-20), b),
        now=at(30),
        policy=DEFAULT_POLICY,
    )
    assert (result.instrument, result.status, codes(result)) == ("gad7", status, reasons)
    assert all("GAD-7" in reason.detail for reason in result.reasons)


# --- properties ---------------------------------------------------------------------------

days = st.integers(-40, 80).map(float) | st.floats(-40, 80, allow_nan=False)
score_pairs = st.lists(st.tuples(days, st.integers(0, 27)), max_size=10)
dose_days = st.lists(st.integers(-30, 40), min_size=0, max_size=9, unique=True)


@given(
    pairs=score_pairs,
    doses=dose_days,
    b=st.integers(0, 27) | st.none(),
    data=st.data(),
)
def test_status_does_not_depend_on_input_order(
    pairs: list[tuple[float, int]], doses: list[int], b: int | None, data: st.DataObject
) -> None:
    scores = points(pairs)
    dose_times = [at(day) for day in doses]
    baseline = None if b is None else ScorePoint("baseline", at(-40), b)

    def run(scores: list[ScorePoint], dose_times: list[datetime]) -> BoosterSignal:
        return booster_signal(
            scores=scores,
            dose_times=dose_times,
            baseline=baseline,
            now=at(90),
            policy=DEFAULT_POLICY,
        )

    shuffled = run(data.draw(st.permutations(scores)), data.draw(st.permutations(dose_times)))
    assert shuffled == run(scores, dose_times)


NEVER_FROM_A_NADIR_SCORE = {
    "relapse_confirmed",
    "relapse_unconfirmed",
    "rise_from_nadir",
    "gains_half_lost",
}


@given(
    pairs=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 27)), min_size=1, max_size=8),
    b=st.integers(10, 27),
    booster_day=st.none() | st.integers(0, 40),
    gap=st.integers(1, 30),
)
def test_a_new_score_equal_to_the_nadir_never_moves_toward_a_booster(
    pairs: list[tuple[float, int]], b: int, booster_day: int | None, gap: int
) -> None:
    doses = INDUCTION if booster_day is None else [*INDUCTION, at(booster_day)]
    before = signal(pairs, b=b, doses=doses, now=at(100))
    if before.nadir is None:
        return  # no window since the latest dose: there is no nadir to repeat
    nadir = before.nadir
    if nadir >= 10 and nadir > b / 2:
        return  # the nadir is itself a hit: see test_a_nadir_that_is_a_hit_can_confirm
    last_day = max(day for day, _ in pairs)
    after = signal([*pairs, (last_day + gap, nadir)], b=b, doses=doses, now=at(100))
    assert after.status != "consider_booster"
    assert not NEVER_FROM_A_NADIR_SCORE & set(codes(after))
    # The Theil-Sen trend may, by the rule as written, still read `worsening` (see
    # test_a_nadir_score_can_reveal_a_worsening_trend); nothing else can raise the rank.
    if codes(after) != ("worsening_trend",):
        assert STATUS_RANK[after.status] <= STATUS_RANK[before.status]


def test_a_nadir_that_is_a_hit_can_confirm() -> None:
    # Responded before the booster (6); every score since it is a hit: the second one,
    # equal to the nadir 13 and a week later, confirms the relapse as section 5 says.
    doses = [*INDUCTION, at(10)]
    assert signal([(0, 6), (12, 13)], doses=doses).status == "watch"
    assert signal([(0, 6), (12, 13), (19, 13)], doses=doses).status == "consider_booster"


def test_a_nadir_score_can_reveal_a_worsening_trend() -> None:
    # Section 4 rules applied to W: the window slides past the early 27 and the
    # Theil-Sen median of a steady +0.1/day rise is kept (the last score is the outlier),
    # projected over 56 days = +5.6 >= 5.
    pairs = [(0, 27), (10, 6), (20, 7), (30, 8), (40, 9)]
    before = signal(pairs)
    assert (before.status, before.nadir) == ("stable", 6)
    after = signal([*pairs, (66, 6)])
    assert (after.status, codes(after)) == ("watch", ("worsening_trend",))
