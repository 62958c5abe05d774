import json
import math
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kap_outcomes.clinical.policy import (
    DEFAULT_POLICY,
    GAD7_POLICY,
    PHQ9_POLICY,
    Policy,
    PolicyError,
    fraction_of,
    policy_from_dict,
    policy_problems,
    policy_to_dict,
)

# Every threshold of clinical-rules.md sections 3-5 with its documented value.
SPEC_VALUES = [
    ("phq9.mcid", 5),  # [Lowe04]
    ("gad7.mcid", 4),  # [Toussaint20]
    ("phq9.reliable_change", 6),  # [IAPT]
    ("gad7.reliable_change", 4),  # [IAPT]
    ("phq9.caseness", 10),  # [IAPT]
    ("gad7.caseness", 8),  # [IAPT]
    ("phq9.response_min_baseline", 10),  # [NCQA/MBC]
    ("gad7.response_min_baseline", 8),  # ENG
    ("phq9.remission_min_baseline", 10),  # [NCQA/MBC]
    ("gad7.remission_min_baseline", None),  # not defined
    ("phq9.remission_below", 5),
    ("gad7.remission_below", None),
    ("phq9.minimal_below", 5),
    ("gad7.minimal_below", 5),
    ("phq9.relapse_min_score", 10),
    ("gad7.relapse_min_score", 8),
    ("phq9.rise_from_nadir", 5),
    ("gad7.rise_from_nadir", 4),
    ("response_fraction", 0.5),
    ("baseline_lookback_days", 30),
    ("trend_min_scores", 3),
    ("trend_min_span_days", 14),
    ("trend_window_scores", 5),
    ("trend_window_days", 56),
    ("ewma_alpha", 0.5),
    ("induction_doses", 6),
    ("response_lost_fraction", 0.5),
    ("relapse_confirmation_min_scores", 2),
    ("relapse_confirmation_min_days", 5),
    ("gains_half_lost_fraction", 0.5),
    ("cadence_early_period_days", 56),
    ("cadence_early_interval_days", 7),
    ("cadence_late_interval_days", 14),
]


@pytest.mark.parametrize(("path", "expected"), SPEC_VALUES)
def test_default_policy_holds_the_spec_values(path: str, expected: object) -> None:
    value: object = DEFAULT_POLICY
    for part in path.split("."):
        value = getattr(value, part)
    assert value == expected


def test_every_field_is_covered_by_the_spec_table() -> None:
    flat = policy_to_dict(DEFAULT_POLICY)
    paths = {
        f"{key}.{sub}" if isinstance(value, dict) else key
        for key, value in flat.items()
        for sub in (value if isinstance(value, dict) else [None])
    }
    assert paths == {path for path, _ in SPEC_VALUES}


def test_default_policy_has_no_problems() -> None:
    assert policy_problems(DEFAULT_POLICY) == []


NONSENSE = [
    (replace(DEFAULT_POLICY, phq9=replace(PHQ9_POLICY, mcid=-1)), "phq9.mcid"),
    (replace(DEFAULT_POLICY, phq9=replace(PHQ9_POLICY, mcid=0)), "phq9.mcid"),
    (replace(DEFAULT_POLICY, phq9=replace(PHQ9_POLICY, caseness=28)), "phq9.caseness"),
    (replace(DEFAULT_POLICY, gad7=replace(GAD7_POLICY, caseness=22)), "gad7.caseness"),
    (
        replace(DEFAULT_POLICY, gad7=replace(GAD7_POLICY, remission_below=5)),
        "gad7.remission_below",
    ),
    (
        replace(DEFAULT_POLICY, gad7=replace(GAD7_POLICY, rise_from_nadir=-4)),
        "gad7.rise_from_nadir",
    ),
    (replace(DEFAULT_POLICY, response_fraction=0.0), "response_fraction"),
    (replace(DEFAULT_POLICY, response_fraction=1.5), "response_fraction"),
    (replace(DEFAULT_POLICY, response_lost_fraction=-0.5), "response_lost_fraction"),
    (replace(DEFAULT_POLICY, gains_half_lost_fraction=math.nan), "gains_half_lost_fraction"),
    (replace(DEFAULT_POLICY, ewma_alpha=0.0), "ewma_alpha"),
    (replace(DEFAULT_POLICY, ewma_alpha=1.01), "ewma_alpha"),
    (replace(DEFAULT_POLICY, induction_doses=0), "induction_doses"),
    (replace(DEFAULT_POLICY, trend_min_scores=1), "trend_min_scores"),
    (replace(DEFAULT_POLICY, trend_min_span_days=0), "trend_min_span_days"),
    (replace(DEFAULT_POLICY, trend_window_scores=2), "trend_window_scores"),
    (replace(DEFAULT_POLICY, trend_window_days=10), "trend_window_days"),
    (replace(DEFAULT_POLICY, baseline_lookback_days=-1), "baseline_lookback_days"),
    (
        replace(DEFAULT_POLICY, relapse_confirmation_min_scores=1),
        "relapse_confirmation_min_scores",
    ),
    (
        replace(DEFAULT_POLICY, relapse_confirmation_min_days=-5),
        "relapse_confirmation_min_days",
    ),
    (replace(DEFAULT_POLICY, cadence_early_interval_days=0), "cadence_early_interval_days"),
    (replace(DEFAULT_POLICY, cadence_late_interval_days=-14), "cadence_late_interval_days"),
    (replace(DEFAULT_POLICY, cadence_early_period_days=-1), "cadence_early_period_days"),
]


@pytest.mark.parametrize(("policy", "field"), NONSENSE)
def test_policy_problems_rejects_nonsense(policy: Policy, field: str) -> None:
    problems = policy_problems(policy)
    assert [name for name, _ in problems] == [field]
    assert problems[0][1]


def test_round_trip_through_json() -> None:
    stored = json.dumps(policy_to_dict(DEFAULT_POLICY))
    assert policy_from_dict(json.loads(stored)) == DEFAULT_POLICY


def test_missing_keys_keep_the_base_values() -> None:
    policy = policy_from_dict({"induction_doses": 4, "phq9": {"mcid": 6}})
    assert policy == replace(DEFAULT_POLICY, induction_doses=4, phq9=replace(PHQ9_POLICY, mcid=6))
    assert policy_from_dict({}, base=policy) == policy


def test_ints_are_accepted_for_fractions() -> None:
    assert policy_from_dict({"ewma_alpha": 1}).ewma_alpha == 1.0


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        ({"mcid": 5}, ["mcid"]),
        ({"phq9": {"mcid": 5, "typo": 1}}, ["phq9.typo"]),
        ({"phq9": 5}, ["phq9"]),
        ({"induction_doses": "6"}, ["induction_doses"]),
        ({"induction_doses": 6.0}, ["induction_doses"]),
        ({"induction_doses": True}, ["induction_doses"]),
        ({"induction_doses": None}, ["induction_doses"]),
        ({"ewma_alpha": "0.5"}, ["ewma_alpha"]),
        ({"ewma_alpha": False}, ["ewma_alpha"]),
        ({"gad7": {"mcid": None}}, ["gad7.mcid"]),
        ({"ewma_alpha": 2, "induction_doses": 0}, ["ewma_alpha", "induction_doses"]),
        ({"x": 1, "induction_doses": "a"}, ["x", "induction_doses"]),
    ],
)
def test_policy_from_dict_rejects_bad_input(data: dict[str, object], fields: list[str]) -> None:
    with pytest.raises(ValueError) as caught:
        policy_from_dict(data)
    assert isinstance(caught.value, PolicyError)
    assert sorted(name for name, _ in caught.value.problems) == sorted(fields)


def test_null_remission_is_allowed_only_in_pairs() -> None:
    nulled = {"remission_below": None, "remission_min_baseline": None}
    assert policy_from_dict({"phq9": nulled}).phq9.remission_below is None
    with pytest.raises(PolicyError):
        policy_from_dict({"phq9": {"remission_below": None}})


def test_thresholds_for() -> None:
    assert DEFAULT_POLICY.thresholds_for("phq9") is DEFAULT_POLICY.phq9
    assert DEFAULT_POLICY.thresholds_for("gad7") is DEFAULT_POLICY.gad7
    with pytest.raises(ValueError):
        DEFAULT_POLICY.thresholds_for("cssrs")  # type: ignore[arg-type]


def test_fraction_of_is_exact() -> None:
    assert fraction_of(0.3, 10) == 3
    assert fraction_of(0.5, 21) * 2 == 21


fractions = st.floats(min_value=0.01, max_value=1.0)


@given(
    alpha=fractions,
    response=fractions,
    induction=st.integers(1, 12),
    mcid=st.integers(1, 27),
    min_scores=st.integers(2, 6),
    extra_scores=st.integers(0, 4),
)
def test_any_valid_policy_round_trips(
    alpha: float,
    response: float,
    induction: int,
    mcid: int,
    min_scores: int,
    extra_scores: int,
) -> None:
    policy = replace(
        DEFAULT_POLICY,
        ewma_alpha=alpha,
        response_fraction=response,
        induction_doses=induction,
        phq9=replace(PHQ9_POLICY, mcid=mcid),
        trend_min_scores=min_scores,
        trend_window_scores=min_scores + extra_scores,
    )
    assert policy_problems(policy) == []
    assert policy_from_dict(json.loads(json.dumps(policy_to_dict(policy)))) == policy
