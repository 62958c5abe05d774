import random
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kap_outcomes.clinical.points import ScorePoint
from kap_outcomes.clinical.policy import DEFAULT_POLICY, Instrument
from kap_outcomes.clinical.trend import ewma, theil_sen_slope, trend, trend_window

DAY0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def series(days: list[float], totals: list[int]) -> list[ScorePoint]:
    return [
        ScorePoint(f"a{i:02d}", DAY0 + timedelta(days=d), t)
        for i, (d, t) in enumerate(zip(days, totals, strict=True))
    ]


def test_worked_example_robust_to_one_outlier() -> None:
    # Section 4: least squares would say -0.5 / week and hide the improvement.
    result = trend("phq9", series([0, 7, 14, 21, 28], [16, 14, 12, 25, 8]), DEFAULT_POLICY)
    assert result.label == "improving"
    assert result.slope_per_week == -2.0
    assert result.projected_change == -8.0
    assert len(result.window) == 5


def test_worked_example_insufficient_span() -> None:
    result = trend("phq9", series([0, 5, 10], [6, 9, 12]), DEFAULT_POLICY)
    assert result.label == "insufficient_data"
    assert result.slope_per_week is None
    assert result.projected_change is None


TREND_CASES: list[tuple[Instrument, list[float], list[int], str]] = [
    ("phq9", [0, 14], [20, 5], "insufficient_data"),  # fewer than 3 scores
    ("phq9", [0, 7, 13.9], [20, 15, 5], "insufficient_data"),  # span under 14 days
    ("phq9", [0, 7, 14], [20, 15, 5], "improving"),
    ("phq9", [0, 7, 14], [5, 7, 10], "worsening"),  # projected +5 = MCID
    ("phq9", [0, 7, 14], [5, 7, 9], "stable"),  # projected +4
    ("phq9", [0, 7, 14], [10, 8, 5], "improving"),  # projected -5
    ("gad7", [0, 7, 14], [5, 7, 9], "worsening"),  # GAD-7 MCID is 4
    ("gad7", [0, 7, 14], [5, 6, 8], "stable"),
    ("phq9", [0, 0, 14, 14], [10, 12, 16, 18], "worsening"),  # equal times are skipped
    # 5 scores within 56 days of the latest: the first two are outside the window.
    ("phq9", [0, 7, 60, 70, 80, 90, 100], [27, 27, 10, 10, 10, 10, 10], "stable"),
]


@pytest.mark.parametrize(("instrument", "days", "totals", "label"), TREND_CASES)
def test_trend_labels(
    instrument: Instrument, days: list[float], totals: list[int], label: str
) -> None:
    assert trend(instrument, series(days, totals), DEFAULT_POLICY).label == label


def test_window_keeps_the_latest_five_within_56_days() -> None:
    points = series([0, 10, 44, 50, 52, 54, 56, 66], [1, 2, 3, 4, 5, 6, 7, 8])
    assert [p.total for p in trend_window(points, DEFAULT_POLICY)] == [4, 5, 6, 7, 8]
    points = series([0, 10, 56, 60], [1, 2, 3, 4])
    assert [p.total for p in trend_window(points, DEFAULT_POLICY)] == [2, 3, 4]
    assert trend_window([], DEFAULT_POLICY) == ()


def test_trend_does_not_depend_on_input_order() -> None:
    points = series([0, 3, 9, 20, 24, 31], [18, 14, 16, 9, 11, 7])
    shuffled = points[:]
    random.Random(4).shuffle(shuffled)
    assert trend("phq9", shuffled, DEFAULT_POLICY) == trend("phq9", points, DEFAULT_POLICY)


def test_theil_sen_without_distinct_times() -> None:
    assert theil_sen_slope([]) is None
    assert theil_sen_slope([(Fraction(1), Fraction(3)), (Fraction(1), Fraction(5))]) is None


rationals = st.fractions(min_value=-100, max_value=100, max_denominator=50)


@given(
    intercept=rationals,
    slope=rationals,
    xs=st.lists(rationals, min_size=2, max_size=8, unique=True),
)
def test_theil_sen_slope_of_an_exact_line_is_its_slope(
    intercept: Fraction, slope: Fraction, xs: list[Fraction]
) -> None:
    assert theil_sen_slope([(x, intercept + slope * x) for x in xs]) == slope


@given(
    per_week=st.integers(-2, 2),
    weeks=st.lists(st.integers(0, 8), min_size=3, max_size=6, unique=True),
    start=st.integers(0, 27),
)
def test_trend_slope_of_an_exact_line(per_week: int, weeks: list[int], start: int) -> None:
    weeks.sort()  # 3 distinct weeks always span at least 14 days
    totals = [start + per_week * w for w in weeks]
    result = trend("phq9", series([7 * w for w in weeks], totals), DEFAULT_POLICY)
    assert result.slope_per_week == per_week


@given(data=st.data())
def test_one_outlier_in_five_does_not_flip_a_clear_label(data: st.DataObject) -> None:
    # Five weekly-or-sparser scores on a line of 2-3 points/week (projected >= 8 points).
    per_week = data.draw(st.sampled_from([-3, -2, 2, 3]))
    weeks = sorted(data.draw(st.lists(st.integers(0, 8), min_size=5, max_size=5, unique=True)))
    offsets = [w - weeks[0] for w in weeks]
    rise = per_week * offsets[-1]
    start = data.draw(st.integers(max(0, -rise), min(27, 27 - rise)))
    totals = [start + per_week * offset for offset in offsets]
    days = [7.0 * w for w in weeks]
    clean = trend("phq9", series(days, totals), DEFAULT_POLICY)
    assert clean.label == ("improving" if per_week < 0 else "worsening")

    totals[data.draw(st.integers(0, 4))] = data.draw(st.integers(0, 27))
    assert trend("phq9", series(days, totals), DEFAULT_POLICY).label == clean.label


def test_ewma_example() -> None:
    assert ewma([16, 14, 12, 25, 8], 0.5) == [16.0, 15.0, 13.5, 19.25, 13.625]
    assert ewma([], 0.5) == []
    assert ewma([3, 9], 1.0) == [3.0, 9.0]


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5])
def test_ewma_rejects_bad_alpha(alpha: float) -> None:
    with pytest.raises(ValueError):
        ewma([1, 2], alpha)


@given(
    values=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=30),
    alpha=st.floats(min_value=1e-6, max_value=1.0),
)
def test_ewma_stays_within_min_and_max(values: list[float], alpha: float) -> None:
    smoothed = ewma(values, alpha)
    assert len(smoothed) == len(values)
    assert smoothed[0] == values[0]
    assert all(min(values) <= s <= max(values) for s in smoothed)
