"""Safety triggers of clinical-rules.md section 2: every table row, plus invariants."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kap_outcomes.clinical.instruments import ITEM_COUNT, ITEM_MAX, Instrument
from kap_outcomes.clinical.safety import (
    ALERT_LEVEL_RANK,
    AlertKind,
    AlertLevel,
    AlertTrigger,
    evaluate_safety,
    highest_level,
)
from kap_outcomes.clinical.scoring import score

PHQ9, GAD7, CSSRS = Instrument.PHQ9, Instrument.GAD7, Instrument.CSSRS
N = None


def run(instrument: Instrument, items: list[int | None]) -> list[AlertTrigger]:
    return evaluate_safety(instrument, items, score(instrument, items))


# --- the section 2 table, row by row --------------------------------------------------------

ROWS: list[tuple[str, Instrument, list[int | None], AlertLevel, AlertKind, str]] = [
    (
        "C-SSRS high",
        CSSRS,
        [1, 1, 0, 1, 0, 0, N],
        AlertLevel.EMERGENCY,
        AlertKind.CSSRS_RISK,
        "safety precautions until a clinician evaluates",
    ),
    (
        "C-SSRS high (recent behaviour)",
        CSSRS,
        [0, 0, N, N, N, 1, 1],
        AlertLevel.EMERGENCY,
        AlertKind.CSSRS_RISK,
        "safety precautions until a clinician evaluates",
    ),
    (
        "C-SSRS moderate",
        CSSRS,
        [1, 1, 1, 0, 0, 0, N],
        AlertLevel.URGENT,
        AlertKind.CSSRS_RISK,
        "same-day risk assessment",
    ),
    (
        "C-SSRS low",
        CSSRS,
        [1, 0, N, N, N, 0, N],
        AlertLevel.REVIEW,
        AlertKind.CSSRS_RISK,
        "review before the visit ends; safety plan",
    ),
    (
        "PHQ-9 item 9 = 3",
        PHQ9,
        [0, 0, 0, 0, 0, 0, 0, 0, 3],
        AlertLevel.URGENT,
        AlertKind.PHQ9_ITEM9,
        "administer the C-SSRS now",
    ),
    (
        "PHQ-9 item 9 = 2",
        PHQ9,
        [1, 1, 1, 1, 1, 1, 1, 1, 2],
        AlertLevel.URGENT,
        AlertKind.PHQ9_ITEM9,
        "administer the C-SSRS now",
    ),
    (
        "PHQ-9 item 9 = 1",
        PHQ9,
        [0, 0, 0, 0, 0, 0, 0, 0, 1],
        AlertLevel.REVIEW,
        AlertKind.PHQ9_ITEM9,
        "administer the C-SSRS now",
    ),
    (
        "PHQ-9 item 9 not answered",
        PHQ9,
        [3, 3, 3, 3, 3, 3, 3, 3, N],
        AlertLevel.REVIEW,
        AlertKind.SAFETY_ITEM_MISSING,
        "ask item 9",
    ),
    # safety applies even when the PHQ-9 is invalid (3+ missing)
    (
        "invalid PHQ-9, item 9 = 2",
        PHQ9,
        [N, N, N, N, 0, 0, 0, 0, 2],
        AlertLevel.URGENT,
        AlertKind.PHQ9_ITEM9,
        "administer the C-SSRS now",
    ),
    (
        "invalid PHQ-9, item 9 = 1",
        PHQ9,
        [N, N, N, 0, 0, 0, 0, 0, 1],
        AlertLevel.REVIEW,
        AlertKind.PHQ9_ITEM9,
        "administer the C-SSRS now",
    ),
    (
        "empty PHQ-9",
        PHQ9,
        [N] * 9,
        AlertLevel.REVIEW,
        AlertKind.SAFETY_ITEM_MISSING,
        "ask item 9",
    ),
    (
        "empty C-SSRS screener (clinical-rules.md section 8: nothing screened is not no risk)",
        CSSRS,
        [N] * 7,
        AlertLevel.REVIEW,
        AlertKind.SAFETY_ITEM_MISSING,
        "ask the C-SSRS screener's questions",
    ),
]


@pytest.mark.parametrize(
    ("instrument", "items", "level", "kind", "action"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
def test_safety_table(
    instrument: Instrument,
    items: list[int | None],
    level: AlertLevel,
    kind: AlertKind,
    action: str,
) -> None:
    triggers = run(instrument, items)
    assert len(triggers) == 1
    trigger = triggers[0]
    assert (trigger.level, trigger.kind, trigger.suggested_action) == (level, kind, action)
    assert trigger.reason.endswith(".")
    assert "no risk" not in trigger.reason.lower()


@pytest.mark.parametrize(
    ("instrument", "items"),
    [
        (PHQ9, [3, 3, 3, 3, 3, 3, 3, 3, 0]),  # item 9 = 0: no alert, but only a flag
        (PHQ9, [N, N, N, N, N, N, N, N, 0]),
        (CSSRS, [0, 0, N, N, N, 0, N]),  # risk none
        (GAD7, [3] * 7),  # GAD-7 has no safety item
        (GAD7, [N] * 7),
    ],
)
def test_no_trigger(instrument: Instrument, items: list[int | None]) -> None:
    assert run(instrument, items) == []


def test_negative_item9_is_flagged_not_reassured() -> None:
    result = score(PHQ9, [0] * 9)
    assert "item9_negative" in result.flags
    assert result.risk is None  # a PHQ-9 never states a risk level


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        ([0] * 8 + [1], "PHQ-9 item 9 answered 1 (several days)."),
        ([0] * 8 + [2], "PHQ-9 item 9 answered 2 (more than half the days)."),
        ([0] * 8 + [3], "PHQ-9 item 9 answered 3 (nearly every day)."),
        (
            [0] * 8 + [N],
            "PHQ-9 item 9 (thoughts of being better off dead or of self-harm) was not answered.",
        ),
    ],
)
def test_phq9_reasons(items: list[int | None], reason: str) -> None:
    assert [t.reason for t in run(PHQ9, items)] == [reason]


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        ([1, 1, 0, 1, 0, 0, N], "C-SSRS screener risk high: answered yes to q1, q2, q4."),
        ([0, 0, N, N, N, 1, 0], "C-SSRS screener risk moderate: answered yes to q6."),
        ([1, 0, N, N, N, 0, N], "C-SSRS screener risk low: answered yes to q1."),
        (
            [0, 0, 1, 0, 0, 0, N],
            "C-SSRS screener risk moderate: answered yes to q3."
            " Some answers break the screener's skip logic.",
        ),
    ],
)
def test_cssrs_reasons(items: list[int | None], reason: str) -> None:
    assert [t.reason for t in run(CSSRS, items)] == [reason]


def test_alert_level_rank_and_highest() -> None:
    assert (
        ALERT_LEVEL_RANK[AlertLevel.REVIEW]
        < ALERT_LEVEL_RANK[AlertLevel.URGENT]
        < ALERT_LEVEL_RANK[AlertLevel.EMERGENCY]
    )
    assert highest_level([]) is None
    assert highest_level([AlertLevel.REVIEW, AlertLevel.EMERGENCY, AlertLevel.URGENT]) is (
        AlertLevel.EMERGENCY
    )
    assert [k.value for k in AlertKind] == ["cssrs_risk", "phq9_item9", "safety_item_missing"]


# --- properties -----------------------------------------------------------------------------


def answers(instrument: Instrument) -> st.SearchStrategy[list[int | None]]:
    count = ITEM_COUNT[instrument]
    value = st.one_of(st.none(), st.integers(0, ITEM_MAX[instrument]))
    return st.lists(value, min_size=count, max_size=count)


@given(answers(PHQ9))
def test_phq9_item9_always_evaluated(items: list[int | None]) -> None:
    """Validity never suppresses safety: the outcome depends on item 9 alone."""
    triggers = run(PHQ9, items)
    item9 = items[8]
    if item9 == 0:
        assert triggers == []
    else:
        assert len(triggers) == 1
        expected = AlertLevel.URGENT if item9 is not None and item9 >= 2 else AlertLevel.REVIEW
        assert triggers[0].level is expected
    only_item9: list[int | None] = [0] * 8
    assert triggers == run(PHQ9, [*only_item9, item9])


@given(answers(CSSRS))
def test_cssrs_alert_follows_risk(items: list[int | None]) -> None:
    result = score(CSSRS, items)
    triggers = evaluate_safety(CSSRS, items, result)
    if 1 in items:
        assert len(triggers) == 1
        assert triggers[0].kind is AlertKind.CSSRS_RISK
    elif all(value is None for value in items):
        assert [(t.level, t.kind) for t in triggers] == [
            (AlertLevel.REVIEW, AlertKind.SAFETY_ITEM_MISSING)
        ]
    else:
        assert triggers == []


@given(answers(GAD7))
def test_gad7_never_triggers(items: list[int | None]) -> None:
    assert run(GAD7, items) == []
