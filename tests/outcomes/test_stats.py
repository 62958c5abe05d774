"""Wilson intervals against Newcombe 1998, Kaplan-Meier against the Freireich 6-MP data."""

from __future__ import annotations

import random

import pytest

from kap_outcomes.outcomes.stats import kaplan_meier, quantile, spread, wilson


@pytest.mark.parametrize(
    ("events", "n", "low", "high"),
    [
        # Newcombe RG. Stat Med 1998;17:857, Table I, method 3 (Wilson score).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (29, 29, 0.8830, 1.0),
    ],
)
def test_wilson_matches_newcombe_1998(events: int, n: int, low: float, high: float) -> None:
    result = wilson(events, n)
    assert result.ci_low == pytest.approx(low, abs=5e-5)
    assert result.ci_high == pytest.approx(high, abs=5e-5)
    assert result.rate == events / n


def test_wilson_by_hand_for_one_of_two() -> None:
    # p = 1/2, n = 2, z^2 = 3.841459: centre 1/2, half = z/(1+z^2/2) * sqrt(1/8 + z^2/16)
    # = 1.959964 / 2.920729 * sqrt(0.125 + 0.240091) = 0.671053 * 0.604228 = 0.405469.
    result = wilson(1, 2)
    assert result.ci_low == pytest.approx(0.5 - 0.405469, abs=1e-5)
    assert result.ci_high == pytest.approx(0.5 + 0.405469, abs=1e-5)


def test_wilson_without_observations_has_no_rate() -> None:
    result = wilson(0, 0)
    assert (result.n, result.rate, result.ci_low, result.ci_high) == (0, None, None, None)


def test_wilson_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_every_wilson_interval_contains_its_rate() -> None:
    for n in range(1, 201):
        for events in range(n + 1):
            result = wilson(events, n)
            assert result.rate is not None and result.ci_low is not None
            assert result.ci_high is not None
            assert 0.0 <= result.ci_low <= result.rate <= result.ci_high <= 1.0, (events, n)


def test_kaplan_meier_reproduces_the_6mp_table() -> None:
    # Freireich et al. 1963, 6-MP arm (weeks of remission, * = censored), the classic
    # worked example (e.g. Kleinbaum & Klein, Survival Analysis, table 2.1):
    # 6,6,6,6*,7,9*,10,10*,11*,13,16,17*,19*,20*,22,23,25*,32*,32*,34*,35*.
    times = [6, 6, 6, 6, 7, 9, 10, 10, 11, 13, 16, 17, 19, 20, 22, 23, 25, 32, 32, 34, 35]
    events = [1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
    observations = [(float(t), bool(e)) for t, e in zip(times, events, strict=True)]
    random.Random(7).shuffle(observations)  # input order never matters
    curve = kaplan_meier(observations)
    survival = {s.time: round(s.survival, 4) for s in curve.steps if s.events}
    assert survival == {
        6.0: 0.8571,
        7.0: 0.8067,
        10.0: 0.7529,
        13.0: 0.6902,
        16.0: 0.6275,
        22.0: 0.5378,
        23.0: 0.4482,
    }
    at_risk = {s.time: s.at_risk for s in curve.steps}
    assert at_risk[6.0] == 21 and at_risk[7.0] == 17 and at_risk[10.0] == 15
    assert curve.median == 23.0
    assert (curve.n, curve.events) == (21, 9)


def test_kaplan_meier_events_before_censorings_at_the_same_time() -> None:
    # At t=5: 1 event among 2 at risk (the censored one is still at risk): S = 1/2.
    curve = kaplan_meier([(5.0, True), (5.0, False)])
    assert curve.steps[0].survival == 0.5 and curve.steps[0].at_risk == 2
    assert curve.median == 5.0


def test_kaplan_meier_of_nothing() -> None:
    curve = kaplan_meier([])
    assert (curve.n, curve.events, curve.steps, curve.median) == (0, 0, (), None)


def test_quantiles_follow_hyndman_fan_definition_7() -> None:
    # R: quantile(c(1, 2, 3, 4)) -> 1.75, 2.5, 3.25 (type 7, the default).
    values = [4.0, 1.0, 3.0, 2.0]
    assert (quantile(values, 0.25), quantile(values, 0.5), quantile(values, 0.75)) == (
        1.75,
        2.5,
        3.25,
    )
    one = spread([-7.0])
    assert (one.n, one.median, one.q1, one.q3) == (1, -7.0, -7.0, -7.0)
    assert spread([]).median is None
