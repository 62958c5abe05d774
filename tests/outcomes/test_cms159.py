"""CMS159 worked cases: periods, the first index event, the window, exclusions, strata."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time

import pytest

from kap_outcomes.clinical.points import ScorePoint
from kap_outcomes.outcomes.cms159 import (
    PatientRecord,
    add_months,
    assessment_window,
    cms159_report,
    identification_period,
)

START, END = date(2026, 1, 1), date(2026, 12, 31)
# Identification period: [2024-11-01, 2025-11-01).


def on(day: str, total: int, hour: int = 12) -> ScorePoint:
    moment = datetime.combine(date.fromisoformat(day), time(hour), tzinfo=UTC)
    return ScorePoint(f"{day}-{hour}-{total}", moment, total)


def patient(
    name: str,
    *scores: ScorePoint,
    age: str | None = "18+",
    conditions: frozenset[str] | None = frozenset({"depression"}),
) -> PatientRecord:
    return PatientRecord(name, age, conditions, tuple(scores))  # type: ignore[arg-type]


def test_periods_by_hand() -> None:
    assert identification_period(START) == (date(2024, 11, 1), date(2025, 11, 1))
    # 2025-03-10 + 12 months = 2026-03-10; -60 days = 2026-01-09; +60 days = 2026-05-09.
    assert assessment_window(date(2025, 3, 10)) == (date(2026, 1, 9), date(2026, 5, 9))
    # A leap day: 2024-02-29 + 12 months = 2025-02-28 (no 29th).
    assert add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
    assert add_months(date(2025, 3, 31), -1) == date(2025, 2, 28)


def test_the_most_recent_score_in_the_window_decides() -> None:
    # a: index 15 on 2025-03-10; in the window 3 (2026-02-01) then 7 (2026-04-01): the most
    # recent is 7 -> not in the numerator. b: 7 then 4 -> numerator. c: no PHQ-9 in the
    # window (only 2 on 2025-09-01, too early) -> denominator only.
    a = patient("a", on("2025-03-10", 15), on("2026-02-01", 3), on("2026-04-01", 7))
    b = patient("b", on("2025-03-10", 15), on("2026-02-01", 7), on("2026-04-01", 4))
    c = patient("c", on("2025-03-10", 15), on("2025-09-01", 2))
    report = cms159_report([a, b, c], START, END)
    adults = report.strata[1]
    assert (adults.age_group, adults.denominator, adults.exclusions, adults.numerator) == (
        "18+",
        3,
        0,
        1,
    )
    assert adults.performance.rate == pytest.approx(1 / 3)
    assert report.total.numerator == 1 and report.strata[0].denominator == 0


def test_window_ends_are_included_and_one_day_more_is_not() -> None:
    # Index 2025-03-10: window [2026-01-09, 2026-05-09].
    inside_low = patient("a", on("2025-03-10", 12), on("2026-01-09", 2))
    inside_high = patient("b", on("2025-03-10", 12), on("2026-05-09", 2))
    outside_low = patient("c", on("2025-03-10", 12), on("2026-01-08", 2))
    outside_high = patient("d", on("2025-03-10", 12), on("2026-05-10", 2))
    report = cms159_report([inside_low, inside_high, outside_low, outside_high], START, END)
    status = {r.patient_id: r.status for r in report.patients}
    assert status == {
        "a": "numerator",
        "b": "numerator",
        "c": "denominator_only",
        "d": "denominator_only",
    }


def test_the_first_index_event_inside_the_identification_period() -> None:
    # 12 on 2024-10-15 is before the period; 9 on 2024-11-20 is not > 9; 14 on 2024-12-01 is
    # the index; 20 on 2025-01-05 is a later one and does not move it. Window of 2024-12-01:
    # [2025-10-02, 2026-01-30]; the most recent there is 3 on 2026-01-30 -> numerator.
    p = patient(
        "a",
        on("2024-10-15", 12),
        on("2024-11-20", 9),
        on("2024-12-01", 14),
        on("2025-01-05", 20),
        on("2025-11-01", 11),
        on("2026-01-30", 3),
    )
    result = cms159_report([p], START, END).patients[0]
    assert result.index_event is not None
    assert result.index_event.administered_at.date() == date(2024, 12, 1)
    assert result.follow_up is not None and result.follow_up.total == 3
    assert result.status == "numerator"


def test_an_index_event_on_the_period_end_is_outside() -> None:
    # The identification period excludes its end (2025-11-01).
    p = patient("a", on("2025-11-01", 20), on("2026-11-01", 1))
    report = cms159_report([p], START, END)
    assert report.patients[0].status == "no_index_event" and report.total.denominator == 0


def test_exclusions_stay_in_the_denominator_and_out_of_the_rate() -> None:
    # 4 adults with index events: one remits, one does not, one bipolar (remits, but is
    # excluded), one deceased. rate = 1 / (4 - 2) = 0.5.
    remits = patient("a", on("2025-03-10", 15), on("2026-03-10", 2))
    stays = patient("b", on("2025-03-10", 15), on("2026-03-10", 12))
    bipolar = patient(
        "c",
        on("2025-03-10", 15),
        on("2026-03-10", 2),
        conditions=frozenset({"depression", "bipolar_disorder"}),
    )
    died = patient("d", on("2025-03-10", 15), conditions=frozenset({"dysthymia", "deceased"}))
    adults = cms159_report([remits, stays, bipolar, died], START, END).strata[1]
    assert (adults.denominator, adults.exclusions, adults.numerator) == (4, 2, 1)
    assert adults.performance.rate == 0.5


def test_not_evaluable_patients_are_counted_apart() -> None:
    no_age = patient("a", on("2025-03-10", 15), on("2026-03-10", 2), age=None)
    no_conditions = patient("b", on("2025-03-10", 15), conditions=None)
    not_depressed = patient("c", on("2025-03-10", 15), conditions=frozenset())
    no_index = patient("d", on("2025-03-10", 8), age=None, conditions=None)
    report = cms159_report([no_age, no_conditions, not_depressed, no_index], START, END)
    assert report.not_evaluable == {"conditions_not_recorded": 1, "age_group_not_recorded": 1}
    assert report.without_depression == 1
    assert report.total.denominator == 0 and report.total.performance.rate is None


def test_strata_by_age_group() -> None:
    teen = patient("a", on("2025-06-01", 18), on("2026-06-01", 4), age="12-17")
    teen2 = patient("b", on("2025-06-01", 18), on("2026-06-01", 9), age="12-17")
    adult = patient("c", on("2025-06-01", 18), on("2026-06-01", 0))
    report = cms159_report([teen, teen2, adult], START, END)
    teens, adults = report.strata
    assert (teens.age_group, teens.denominator, teens.numerator) == ("12-17", 2, 1)
    assert (adults.denominator, adults.numerator) == (1, 1)
    assert (report.total.denominator, report.total.numerator) == (3, 2)


def test_an_empty_measure() -> None:
    report = cms159_report([], START, END)
    assert all(s.denominator == 0 and s.performance.rate is None for s in report.strata)


def test_scores_after_the_period_end_are_not_read() -> None:
    # Window [2026-01-09, 2026-05-09], but the period ends 2026-03-31: 2 on 2026-04-15 is
    # not yet known; 12 on 2026-02-01 decides.
    p = patient("a", on("2025-03-10", 15), on("2026-02-01", 12), on("2026-04-15", 2))
    result = cms159_report([p], START, date(2026, 3, 31)).patients[0]
    assert result.status == "denominator_only"


def test_reordering_and_patients_without_follow_up() -> None:
    rng = random.Random(2)
    people = []
    for i in range(40):
        scores = [
            on(f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", rng.randint(0, 27))
            for _ in range(rng.randint(0, 6))
        ]
        scores += [
            on(f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", rng.randint(0, 27))
            for _ in range(rng.randint(0, 4))
        ]
        age = rng.choice(["12-17", "18+", None])
        people.append(patient(f"p{i}", *scores, age=age))
    base = cms159_report(people, START, END)
    shuffled = [
        PatientRecord(
            p.patient_id, p.age_group, p.conditions, tuple(rng.sample(p.phq9, len(p.phq9)))
        )
        for p in rng.sample(people, len(people))
    ]
    assert cms159_report(shuffled, START, END) == base
    # A patient with no PHQ-9 at all changes no count.
    more = cms159_report([*people, patient("zz")], START, END)
    assert more.strata == base.strata and more.not_evaluable == base.not_evaluable
    for stratum in (*base.strata, base.total):
        p = stratum.performance
        if p.rate is not None:
            assert p.ci_low is not None and p.ci_high is not None
            assert p.ci_low <= p.rate <= p.ci_high
