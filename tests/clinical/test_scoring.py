"""Scoring rules of clinical-rules.md section 1: worked examples, table rows, invariants."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kap_outcomes.clinical.instruments import (
    ITEM_COUNT,
    ITEM_LOINC,
    ITEM_MAX,
    PANEL_LOINC,
    TOTAL_LOINC,
    Instrument,
    item_problems,
)
from kap_outcomes.clinical.scoring import (
    RISK_RANK,
    Risk,
    Score,
    Severity,
    gad7_severity,
    phq9_severity,
    round_half_up,
    score,
)

from .. import loinc

PHQ9, GAD7, CSSRS = Instrument.PHQ9, Instrument.GAD7, Instrument.CSSRS
N = None


def items_with_total(total: int, count: int) -> list[int | None]:
    """Answers 0..3 summing to `total`, filled from item 3 on so items 1-2 stay low."""
    answers = [0] * count
    order = [*range(2, count), 0, 1]
    left = total
    for index in order:
        answers[index] = min(3, left)
        left -= answers[index]
    assert left == 0
    return list(answers)


# --- 1.1 / 1.2 severity bands: every edge --------------------------------------------------

PHQ9_BANDS = [
    (0, Severity.MINIMAL),
    (4, Severity.MINIMAL),
    (5, Severity.MILD),
    (9, Severity.MILD),
    (10, Severity.MODERATE),
    (14, Severity.MODERATE),
    (15, Severity.MODERATELY_SEVERE),
    (19, Severity.MODERATELY_SEVERE),
    (20, Severity.SEVERE),
    (27, Severity.SEVERE),
]
GAD7_BANDS = [
    (0, Severity.MINIMAL),
    (4, Severity.MINIMAL),
    (5, Severity.MILD),
    (9, Severity.MILD),
    (10, Severity.MODERATE),
    (14, Severity.MODERATE),
    (15, Severity.SEVERE),
    (21, Severity.SEVERE),
]


@pytest.mark.parametrize(("total", "severity"), PHQ9_BANDS)
def test_phq9_severity_band_edges(total: int, severity: Severity) -> None:
    assert phq9_severity(total) is severity
    result = score(PHQ9, items_with_total(total, 9))
    assert (result.total, result.severity) == (total, severity)


@pytest.mark.parametrize(("total", "severity"), GAD7_BANDS)
def test_gad7_severity_band_edges(total: int, severity: Severity) -> None:
    assert gad7_severity(total) is severity
    result = score(GAD7, items_with_total(total, 7))
    assert (result.total, result.severity) == (total, severity)


@pytest.mark.parametrize("total", [-1, 28])
def test_phq9_severity_out_of_range(total: int) -> None:
    with pytest.raises(ValueError, match="between 0 and 27"):
        phq9_severity(total)


@pytest.mark.parametrize("total", [-1, 22])
def test_gad7_severity_out_of_range(total: int) -> None:
    with pytest.raises(ValueError, match="between 0 and 21"):
        gad7_severity(total)


def test_severity_values_are_snake_case() -> None:
    assert [s.value for s in Severity] == [
        "minimal",
        "mild",
        "moderate",
        "moderately_severe",
        "severe",
    ]
    assert [r.value for r in Risk] == ["none", "low", "moderate", "high"]


# --- round half-up --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4.5, 5),  # clinical-rules.md 1.1 example
        (14.625, 15),  # clinical-rules.md 1.1 example
        (Fraction(9, 2), 5),
        (Fraction(117, 8), 15),
        (0.5, 1),
        (1.5, 2),
        (2.5, 3),  # banker's rounding would give 2
        (10.5, 11),
        (Fraction(21, 2), 11),
        (14.4999, 14),
        (Fraction(90, 7), 13),
        (0, 0),
        (27, 27),
        (-2.5, -3),  # halves go away from zero
        (-2.4, -2),
    ],
)
def test_round_half_up(value: Fraction | float, expected: int) -> None:
    assert round_half_up(value) == expected


# --- 1.1 PHQ-9 worked examples --------------------------------------------------------------


def test_contract_example_phq9() -> None:
    result = score(PHQ9, [1, 2, 1, 0, 1, 2, 1, 0, 0])
    assert result == Score(
        valid=True,
        total=8,
        raw_total=8.0,
        prorated=False,
        missing_items=0,
        severity=Severity.MILD,
        subscores={"phq2": 3},
        risk=None,
        flags=("item9_negative", "phq2_positive"),
    )


@pytest.mark.parametrize(
    ("items", "raw_total", "total", "severity", "missing"),
    [
        # 1 missing, 4 x 9 / 8 = 4.5 -> 5: half-up moves it across the minimal/mild edge
        ([1, 1, 1, 1, 0, 0, 0, N, 0], 4.5, 5, Severity.MILD, 1),
        # 1 missing, 13 x 9 / 8 = 14.625 -> 15 (moderately severe, not moderate)
        ([0, 1, 3, 3, 3, 2, 1, N, 0], 14.625, 15, Severity.MODERATELY_SEVERE, 1),
        # 2 missing, 7 x 9 / 7 = 9 exactly
        ([1, 1, 1, 1, 1, 1, N, N, 1], 9.0, 9, Severity.MILD, 2),
        # 2 missing, 10 x 9 / 7 = 12.857... -> 13
        ([N, 3, 3, 3, 1, 0, N, 0, 0], 90 / 7, 13, Severity.MODERATE, 2),
        # prorating cannot exceed the maximum
        ([3, 3, 3, 3, 3, 3, 3, N, N], 27.0, 27, Severity.SEVERE, 2),
    ],
)
def test_phq9_prorating(
    items: list[int | None], raw_total: float, total: int, severity: Severity, missing: int
) -> None:
    result = score(PHQ9, items)
    assert result.valid
    assert result.prorated
    assert result.raw_total == pytest.approx(raw_total, abs=0)
    assert result.total == total
    assert result.severity is severity
    assert result.missing_items == missing


def test_phq9_prorating_is_exact() -> None:
    # float arithmetic could land on 4.4999...; the Fraction path must not
    assert score(PHQ9, [1, 1, 1, 1, 0, 0, 0, N, 0]).raw_total == 4.5


@pytest.mark.parametrize(
    "items",
    [
        [1, 2, 1, N, N, N, 1, 0, 0],
        [N, N, N, N, N, N, N, N, N],
        [3, 3, 3, 3, 3, 3, N, N, N],
    ],
)
def test_phq9_three_or_more_missing_is_invalid(items: list[int | None]) -> None:
    result = score(PHQ9, items)
    assert not result.valid
    assert result.total is None
    assert result.raw_total is None
    assert result.severity is None
    assert not result.prorated
    assert result.missing_items == sum(1 for v in items if v is None)


def test_phq9_invalid_still_reports_item9_and_phq2() -> None:
    result = score(PHQ9, [2, 2, N, N, N, 1, 1, 1, 0])
    assert not result.valid
    assert result.subscores == {"phq2": 4}
    assert result.flags == ("item9_negative", "phq2_positive")
    assert score(PHQ9, [0, 0, N, N, N, 1, 1, 1, N]).flags == ("item9_missing",)


def test_phq9_no_missing_is_not_prorated() -> None:
    result = score(PHQ9, [3] * 9)
    assert (result.total, result.raw_total, result.prorated) == (27, 27.0, False)
    assert result.flags == ("phq2_positive",)  # item 9 = 3: no item9_* flag (safety alerts)


# --- PHQ-2 / GAD-2 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instrument", "first_two", "subscores", "flag"),
    [
        (PHQ9, (1, 2), {"phq2": 3}, "phq2_positive"),
        (PHQ9, (3, 0), {"phq2": 3}, "phq2_positive"),
        (PHQ9, (1, 1), {"phq2": 2}, None),
        (PHQ9, (3, N), {}, None),
        (PHQ9, (N, 3), {}, None),
        (GAD7, (2, 1), {"gad2": 3}, "gad2_positive"),
        (GAD7, (3, 3), {"gad2": 6}, "gad2_positive"),
        (GAD7, (0, 2), {"gad2": 2}, None),
        (GAD7, (N, 3), {}, None),
    ],
)
def test_two_item_screens(
    instrument: Instrument,
    first_two: tuple[int | None, int | None],
    subscores: dict[str, int],
    flag: str | None,
) -> None:
    items: list[int | None] = [*first_two] + [1] * (ITEM_COUNT[instrument] - 2)
    result = score(instrument, items)
    assert result.subscores == subscores
    positives = [f for f in result.flags if f.endswith("_positive")]
    assert positives == ([flag] if flag else [])


# --- 1.2 GAD-7 missing items ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "raw_total", "total", "severity"),
    [
        ([1, 1, 1, N, 0, 0, 0], 3.5, 4, Severity.MINIMAL),  # 3 x 7 / 6
        ([N, 3, 3, 1, 1, 1, 0], 10.5, 11, Severity.MODERATE),  # 9 x 7 / 6
        ([3, 3, 3, 3, 3, N, 0], 17.5, 18, Severity.SEVERE),  # 15 x 7 / 6
        ([3, 3, 3, 3, 3, 3, N], 21.0, 21, Severity.SEVERE),
        ([1, 1, 1, 1, 1, 1, N], 7.0, 7, Severity.MILD),
    ],
)
def test_gad7_one_missing_is_prorated(
    items: list[int | None], raw_total: float, total: int, severity: Severity
) -> None:
    result = score(GAD7, items)
    assert result.valid
    assert result.prorated
    assert result.missing_items == 1
    assert result.raw_total == raw_total
    assert result.total == total
    assert result.severity is severity
    assert result.risk is None


@pytest.mark.parametrize("items", [[1, 1, 1, N, N, 0, 0], [N] * 7, [3, 3, 3, 3, 3, N, N]])
def test_gad7_two_or_more_missing_is_invalid(items: list[int | None]) -> None:
    result = score(GAD7, items)
    assert (result.valid, result.total, result.raw_total, result.severity) == (
        False,
        None,
        None,
        None,
    )


def test_gad7_has_no_item9_flags() -> None:
    assert score(GAD7, [0] * 7).flags == ()


# --- 1.3 C-SSRS risk (first match wins) and skip logic -------------------------------------

#            q1 q2 q3 q4 q5 q6 q6b
CSSRS_ROWS: list[tuple[str, list[int | None], Risk | None]] = [
    ("high: q4", [1, 1, 0, 1, 0, 0, N], Risk.HIGH),
    ("high: q5", [1, 1, 0, 0, 1, 0, N], Risk.HIGH),
    ("high: q6 and q6b", [0, 0, N, N, N, 1, 1], Risk.HIGH),
    ("high beats moderate: q3 and q4", [1, 1, 1, 1, 0, 0, N], Risk.HIGH),
    ("high beats moderate: q3 and recent behaviour", [1, 1, 1, 0, 0, 1, 1], Risk.HIGH),
    ("high: everything yes", [1, 1, 1, 1, 1, 1, 1], Risk.HIGH),
    ("moderate: q3", [1, 1, 1, 0, 0, 0, N], Risk.MODERATE),
    ("moderate: q6, q6b no", [0, 0, N, N, N, 1, 0], Risk.MODERATE),
    ("moderate: q6, q6b not asked", [0, 0, N, N, N, 1, N], Risk.MODERATE),
    ("moderate beats low: q1 and lifetime behaviour", [1, 0, N, N, N, 1, 0], Risk.MODERATE),
    ("low: q1", [1, 0, N, N, N, 0, N], Risk.LOW),
    ("low: q2", [0, 1, 0, 0, 0, 0, N], Risk.LOW),
    ("low: q1 and q2", [1, 1, 0, 0, 0, 0, N], Risk.LOW),
    ("none: all asked, all no", [0, 0, N, N, N, 0, N], Risk.NONE),
    ("none: every answer no", [0, 0, 0, 0, 0, 0, 0], Risk.NONE),
    ("none: partial, what was answered is no", [0, N, N, N, N, N, N], Risk.NONE),
    ("nothing answered: not screened", [N] * 7, None),
    # ENG: q6b yes without q6 yes matches no row of the table; counted conservatively
    ("q6b yes, q6 no", [0, 0, N, N, N, 0, 1], Risk.HIGH),
]


@pytest.mark.parametrize(
    ("items", "risk"), [r[1:] for r in CSSRS_ROWS], ids=[r[0] for r in CSSRS_ROWS]
)
def test_cssrs_risk_table(items: list[int | None], risk: Risk | None) -> None:
    result = score(CSSRS, items)
    assert result.risk is risk
    assert result.valid is (risk is not None)
    assert (result.total, result.raw_total, result.severity, result.prorated) == (
        None,
        None,
        None,
        False,
    )
    assert result.subscores == {}


@pytest.mark.parametrize(
    ("items", "risk", "violation"),
    [
        ([0, 0, 1, 0, 0, 0, N], Risk.MODERATE, True),  # q2 no, q3 yes
        ([0, 0, 0, 1, 0, 0, N], Risk.HIGH, True),  # q2 no, q4 yes
        ([0, 0, N, N, 1, 0, N], Risk.HIGH, True),  # q2 no, q5 yes
        ([0, N, 1, N, N, 0, N], Risk.MODERATE, True),  # ENG: q2 not asked, q3 yes
        ([0, 0, N, N, N, 0, 1], Risk.HIGH, True),  # ENG: q6 no, q6b yes
        ([0, 0, 0, 0, 0, 0, N], Risk.NONE, False),  # answered no although not required
        ([1, 1, 1, 0, 0, 0, N], Risk.MODERATE, False),
    ],
)
def test_cssrs_skip_logic(items: list[int | None], risk: Risk, violation: bool) -> None:
    result = score(CSSRS, items)
    assert result.risk is risk
    assert result.valid
    assert result.flags == (("cssrs_skip_logic_violation",) if violation else ())


@pytest.mark.parametrize(
    ("items", "missing"),
    [
        ([0, 0, N, N, N, 0, N], 0),  # q3-q5 and q6b correctly not asked
        ([0, 1, 0, 0, 0, 0, N], 0),
        ([0, 1, N, N, N, 0, N], 3),  # q2 yes: q3-q5 were required
        ([0, 0, N, N, N, 1, N], 1),  # q6 yes: q6b was required
        ([N, N, N, N, N, N, N], 3),  # q1, q2, q6 are always asked
        ([1, N, N, N, N, N, N], 2),
    ],
)
def test_cssrs_missing_items_follow_skip_logic(items: list[int | None], missing: int) -> None:
    assert score(CSSRS, items).missing_items == missing


# --- instruments: item problems and codes ---------------------------------------------------


@pytest.mark.parametrize(
    ("instrument", "items", "problems"),
    [
        (PHQ9, [0] * 8, [(None, "phq9 needs exactly 9 items, got 8")]),
        # the difficulty question is not an item
        (PHQ9, [0] * 10, [(None, "phq9 needs exactly 9 items, got 10")]),
        (GAD7, [0] * 9, [(None, "gad7 needs exactly 7 items, got 9")]),
        (CSSRS, [], [(None, "cssrs needs exactly 7 items, got 0")]),
        (
            PHQ9,
            [0, 0, 0, 4, 0, 0, 0, 0, -1],
            [(3, "must be between 0 and 3"), (8, "must be between 0 and 3")],
        ),
        (GAD7, [N, 0, 0, 0, 0, 0, 7], [(6, "must be between 0 and 3")]),
        (CSSRS, [0, 2, N, N, N, 0, N], [(1, "must be between 0 and 1")]),
        (CSSRS, [0, 0, N, N, N, 0, True], [(6, "must be an integer or null")]),
        (PHQ9, [0] * 9, []),
        (PHQ9, [N] * 9, []),
        (CSSRS, [1] * 7, []),
    ],
)
def test_item_problems(
    instrument: Instrument, items: list[int | None], problems: list[tuple[int | None, str]]
) -> None:
    assert item_problems(instrument, items) == problems


def test_loinc_codes() -> None:
    """Every code the service uses is the published one (tests/loinc.py, written from the LOINC
    panels), in item order, with a valid LOINC check digit."""
    for instrument in Instrument:
        assert ITEM_LOINC[instrument] == loinc.ITEMS[instrument.value], instrument
        assert TOTAL_LOINC[instrument] == loinc.TOTALS[instrument.value], instrument
        assert PANEL_LOINC[instrument] == loinc.PANELS[instrument.value], instrument
        assert len(ITEM_LOINC[instrument]) == ITEM_COUNT[instrument]
    used = [*(c for codes in ITEM_LOINC.values() for c in codes), *PANEL_LOINC.values()]
    used += [c for c in TOTAL_LOINC.values() if c is not None]
    for code in used:
        number, digit = code.split("-")
        assert loinc.check_digit(number) == int(digit), code


def test_loinc_check_digit_rule() -> None:
    """The mod-10 rule itself, worked by hand on three codes."""
    assert loinc.check_digit("1000") == 9  # 1,0 then 00 x 2 = 0: 1 → 9
    assert loinc.check_digit("44249") == 1  # 4,4 then 429 x 2 = 858: 4+4+8+5+8 = 29 → 1
    assert loinc.check_digit("68509") == 9  # 8,0 then 659 x 2 = 1318: 21 → 9


# --- properties -----------------------------------------------------------------------------


def answers(
    instrument: Instrument, max_missing: int | None = None
) -> st.SearchStrategy[list[int | None]]:
    """Answer lists of the right length; at most `max_missing` nulls when given."""
    count = ITEM_COUNT[instrument]
    if max_missing is None:
        value = st.one_of(st.none(), st.integers(0, ITEM_MAX[instrument]))
        return st.lists(value, min_size=count, max_size=count)

    def blank(answered: list[int], missing: set[int]) -> list[int | None]:
        return [None if i in missing else v for i, v in enumerate(answered)]

    return st.builds(
        blank,
        st.lists(st.integers(0, ITEM_MAX[instrument]), min_size=count, max_size=count),
        st.sets(st.integers(0, count - 1), max_size=max_missing),
    )


SUM_MAX = {PHQ9: 27, GAD7: 21}


@given(st.sampled_from([PHQ9, GAD7]).flatmap(lambda i: st.tuples(st.just(i), answers(i))))
def test_totals_in_range(case: tuple[Instrument, list[int | None]]) -> None:
    instrument, items = case
    result = score(instrument, items)
    if result.valid:
        assert result.total is not None
        assert result.raw_total is not None
        assert 0 <= result.raw_total <= SUM_MAX[instrument]
        assert 0 <= result.total <= SUM_MAX[instrument]
        assert abs(result.total - result.raw_total) <= 0.5
        assert result.prorated is (None in items)
    else:
        assert (result.total, result.raw_total, result.severity) == (None, None, None)
    assert result.missing_items == items.count(None)
    assert list(result.flags) == sorted(result.flags)


@given(answers(PHQ9, max_missing=2))
def test_phq9_up_to_two_missing_is_valid(items: list[int | None]) -> None:
    assert score(PHQ9, items).valid


@given(answers(GAD7, max_missing=1))
def test_gad7_up_to_one_missing_is_valid(items: list[int | None]) -> None:
    assert score(GAD7, items).valid


@given(st.integers(0, 27), st.integers(0, 27))
def test_phq9_severity_monotone(a: int, b: int) -> None:
    low, high = sorted((a, b))
    order = list(Severity)
    assert order.index(phq9_severity(low)) <= order.index(phq9_severity(high))


@given(st.integers(0, 21), st.integers(0, 21))
def test_gad7_severity_monotone(a: int, b: int) -> None:
    low, high = sorted((a, b))
    order = list(Severity)
    assert order.index(gad7_severity(low)) <= order.index(gad7_severity(high))


@given(st.sampled_from(list(Instrument)).flatmap(lambda i: st.tuples(st.just(i), answers(i))))
def test_score_is_deterministic(case: tuple[Instrument, list[int | None]]) -> None:
    instrument, items = case
    snapshot = list(items)
    assert score(instrument, items) == score(instrument, tuple(items))
    assert items == snapshot  # the input is not mutated


@given(answers(CSSRS), st.data())
def test_cssrs_risk_never_goes_down_when_an_answer_becomes_yes(
    items: list[int | None], data: st.DataObject
) -> None:
    candidates = [i for i, v in enumerate(items) if v != 1]
    if not candidates:
        return
    index = data.draw(st.sampled_from(candidates))
    before = score(CSSRS, items).risk
    flipped = list(items)
    flipped[index] = 1
    after = score(CSSRS, flipped).risk
    assert after is not None
    assert after is not Risk.NONE
    if before is not None:
        assert RISK_RANK[after] >= RISK_RANK[before]


@given(
    st.sampled_from(list(Instrument)).flatmap(
        lambda i: st.tuples(
            st.just(i),
            st.lists(
                st.integers(-5, 8) | st.none(), min_size=ITEM_COUNT[i], max_size=ITEM_COUNT[i]
            ),
        )
    )
)
def test_item_problems_flags_every_out_of_range_value(
    case: tuple[Instrument, list[int | None]],
) -> None:
    instrument, items = case
    flagged = {index for index, _ in item_problems(instrument, items)}
    top = ITEM_MAX[instrument]
    bad = {i for i, v in enumerate(items) if v is not None and not 0 <= v <= top}
    assert flagged == bad
