from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kap_outcomes.clinical.change import (
    ChangeMetrics,
    change_metrics,
    course_baseline,
    episode_outcome,
)
from kap_outcomes.clinical.points import ScorePoint
from kap_outcomes.clinical.policy import DEFAULT_POLICY, Instrument

FIRST_DOSE = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def at(days: float) -> datetime:
    return FIRST_DOSE + timedelta(days=days)


def point(assessment_id: str, days: float, total: int) -> ScorePoint:
    return ScorePoint(assessment_id, at(days), total)


# --- baseline ------------------------------------------------------------------------------

BASELINE_CASES = [
    # (scores as (id, day relative to the first dose, total), expected id)
    ([("a", -10, 20), ("b", -2, 18), ("c", 3, 9)], "b"),  # latest before the dose
    ([("a", 0, 20)], "a"),  # at the dose counts
    ([("a", -30, 20)], "a"),  # exactly 30 days before counts
    ([("a", -30.001, 20)], None),  # older than 30 days does not
    ([("a", -31, 20), ("c", 2, 15)], None),  # after the dose never does
    ([], None),
    ([("b", -1, 20), ("a", -1, 18)], "b"),  # equal times: the larger id is "latest"
]


@pytest.mark.parametrize(("scores", "expected"), BASELINE_CASES)
def test_course_baseline_with_a_first_dose(
    scores: list[tuple[str, float, int]], expected: str | None
) -> None:
    points = [point(*s) for s in scores]
    for order in (points, points[::-1]):
        found = course_baseline(order, first_dose_at=FIRST_DOSE, policy=DEFAULT_POLICY)
        assert (found.assessment_id if found else None) == expected


def test_course_baseline_without_a_dose_is_the_first_score() -> None:
    points = [point("b", 5, 12), point("a", -40, 20), point("c", 9, 9)]
    found = course_baseline(points, first_dose_at=None, policy=DEFAULT_POLICY)
    assert found == point("a", -40, 20)
    assert course_baseline([], first_dose_at=None, policy=DEFAULT_POLICY) is None


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        ScorePoint("a", datetime(2026, 3, 1), 10)


# --- change ------------------------------------------------------------------------------


def test_api_contract_example() -> None:
    assert change_metrics("phq9", 22, 9, DEFAULT_POLICY) == ChangeMetrics(
        points=-13,
        percent=-59.1,
        mcid_met=True,
        reliable_improvement=True,
        reliable_deterioration=False,
        response=True,
        remission=False,
        minimal=False,
        non_caseness=True,
    )


# (instrument, B, C, field, expected): one row per threshold edge of section 3's table.
CHANGE_ROWS: list[tuple[Instrument, int, int, str, bool | None]] = [
    ("phq9", 15, 10, "mcid_met", True),  # |C - B| >= 5 [Lowe04]
    ("phq9", 15, 11, "mcid_met", False),
    ("phq9", 10, 15, "mcid_met", True),
    ("gad7", 12, 8, "mcid_met", True),  # >= 4 [Toussaint20]
    ("gad7", 12, 9, "mcid_met", False),
    ("gad7", 8, 12, "mcid_met", True),
    ("phq9", 16, 10, "reliable_improvement", True),  # B - C >= 6 [IAPT]
    ("phq9", 16, 11, "reliable_improvement", False),
    ("gad7", 12, 8, "reliable_improvement", True),  # >= 4 [IAPT]
    ("gad7", 12, 9, "reliable_improvement", False),
    ("phq9", 10, 16, "reliable_deterioration", True),  # C - B >= 6
    ("phq9", 10, 15, "reliable_deterioration", False),
    ("gad7", 8, 12, "reliable_deterioration", True),
    ("gad7", 8, 11, "reliable_deterioration", False),
    ("phq9", 22, 11, "response", True),  # (B - C)/B >= 0.5 [NCQA/MBC]
    ("phq9", 22, 12, "response", False),
    ("phq9", 10, 5, "response", True),
    ("phq9", 9, 0, "response", None),  # B < 10: not applicable
    ("gad7", 8, 4, "response", True),  # B >= 8 (ENG)
    ("gad7", 8, 5, "response", False),
    ("gad7", 7, 0, "response", None),
    ("phq9", 10, 4, "remission", True),  # C < 5, B >= 10 [NCQA/MBC]
    ("phq9", 10, 5, "remission", False),
    ("phq9", 9, 0, "remission", None),
    ("gad7", 21, 0, "remission", None),  # not defined for GAD-7
    ("gad7", 15, 4, "minimal", True),  # C < 5
    ("gad7", 15, 5, "minimal", False),
    ("gad7", 15, 7, "non_caseness", True),  # C < 8 [IAPT]
    ("gad7", 15, 8, "non_caseness", False),
    ("phq9", 15, 9, "non_caseness", True),  # C < 10 [IAPT]
    ("phq9", 15, 10, "non_caseness", False),
]


@pytest.mark.parametrize(("instrument", "b", "c", "field", "expected"), CHANGE_ROWS)
def test_change_table(
    instrument: Instrument, b: int, c: int, field: str, expected: bool | None
) -> None:
    assert getattr(change_metrics(instrument, b, c, DEFAULT_POLICY), field) is expected


@pytest.mark.parametrize(
    ("b", "c", "percent"),
    [(22, 9, -59.1), (16, 15, -6.3), (16, 17, 6.3), (10, 10, 0.0), (0, 5, None), (3, 2, -33.3)],
)
def test_percent_is_rounded_half_away_from_zero(b: int, c: int, percent: float | None) -> None:
    metrics = change_metrics("phq9", b, c, DEFAULT_POLICY)
    assert metrics.percent == percent
    assert metrics.points == c - b


instruments = st.sampled_from(["phq9", "gad7"])


@given(instrument=instruments, b=st.integers(0, 27), c=st.integers(0, 27))
def test_response_and_remission_are_none_below_the_baseline_threshold(
    instrument: Instrument, b: int, c: int
) -> None:
    thresholds = DEFAULT_POLICY.thresholds_for(instrument)
    metrics = change_metrics(instrument, b, c, DEFAULT_POLICY)
    if b < thresholds.response_min_baseline:
        assert metrics.response is None
        assert metrics.remission is None
    else:
        assert isinstance(metrics.response, bool)
        assert (metrics.remission is None) == (instrument == "gad7")


@given(instrument=instruments, b=st.integers(0, 27), c=st.integers(0, 27))
def test_mcid_is_symmetric_and_reliable_change_is_exclusive(
    instrument: Instrument, b: int, c: int
) -> None:
    forward = change_metrics(instrument, b, c, DEFAULT_POLICY)
    backward = change_metrics(instrument, c, b, DEFAULT_POLICY)
    assert forward.mcid_met == backward.mcid_met
    assert forward.reliable_improvement == backward.reliable_deterioration
    assert not (forward.reliable_improvement and forward.reliable_deterioration)


# --- episode outcomes [IAPT] ------------------------------------------------------------

EPISODES = [
    # (first PHQ-9, last PHQ-9, first GAD-7, last GAD-7) -> (recovery, reliable recovery)
    ((18, 6, 12, 5), (True, True)),  # case at start, none at end, reliable improvement
    ((10, 9, 8, 7), (True, False)),  # recovered but no reliable change
    ((18, 10, 12, 5), (False, False)),  # PHQ-9 still a case at the end
    ((18, 6, 12, 8), (False, False)),  # GAD-7 still a case at the end
    ((12, 4, 2, 7), (True, False)),  # PHQ-9 improved reliably, GAD-7 deteriorated reliably
    ((9, 3, 7, 1), (None, None)),  # not a case at start
    ((5, 4, 9, 2), (True, True)),  # case on GAD-7 only, GAD-7 improved reliably
    ((None, 4, 9, 2), (None, None)),  # any missing score: not computable
    ((18, None, 9, 2), (None, None)),
    ((18, 6, None, 2), (None, None)),
    ((18, 6, 12, None), (None, None)),
]


@pytest.mark.parametrize(("scores", "expected"), EPISODES)
def test_episode_outcome(
    scores: tuple[int | None, int | None, int | None, int | None],
    expected: tuple[bool | None, bool | None],
) -> None:
    assert episode_outcome(*scores, DEFAULT_POLICY) == expected


@given(st.tuples(*[st.integers(0, 27)] * 2, *[st.integers(0, 21)] * 2))
def test_reliable_recovery_implies_recovery(scores: tuple[int, int, int, int]) -> None:
    recovery, reliable = episode_outcome(*scores, DEFAULT_POLICY)
    assert (recovery is None) == (reliable is None)
    if reliable:
        assert recovery
