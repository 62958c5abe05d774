"""Worked cohorts (clinical-rules.md section 7), every value computed by hand."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from kap_outcomes.clinical.points import ScorePoint
from kap_outcomes.clinical.policy import DEFAULT_POLICY
from kap_outcomes.outcomes.cohort import CourseRecord, cohort_report

DAY0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
AS_OF = DAY0 + timedelta(days=400)
P = DEFAULT_POLICY


def at(days: float) -> datetime:
    return DAY0 + timedelta(days=days)


def course(
    name: str,
    scores: dict[float, int],
    *,
    doses: tuple[float, ...] = (0, 1, 2, 3, 4, 5),
    group: str = "all",
    ended: float | None = None,
) -> CourseRecord:
    return CourseRecord(
        course_id=name,
        group=group,
        dose_times=tuple(at(d) for d in doses),
        induction_doses=6,
        ended_at=at(ended) if ended is not None else None,
        scores=tuple(ScorePoint(f"{name}-{d}", at(d), t) for d, t in scores.items()),
    )


def horizon(report, weeks):  # type: ignore[no-untyped-def]
    return next(h for h in report.horizons if h.weeks == weeks)


def test_empty_cohort_has_no_rates() -> None:
    report = cohort_report([], "phq9", P, AS_OF).overall
    assert report.n_started == 0
    for h in report.horizons:
        assert h.n_scored == 0 and h.response.rate is None and h.remission is not None
        assert h.remission.rate is None and h.change.median is None
    assert report.time_to_response.n == 0 and report.time_to_relapse.median is None


def test_cohort_of_one() -> None:
    # B = 20 (day -1); week 2 score 8 on day 14: 20 - 8 = 12 >= 10 -> response; 8 >= 5 -> no
    # remission; change -12. Week 4: 4 on day 28 -> response and remission, change -16.
    one = course("a", {-1: 20, 14: 8, 28: 4})
    report = cohort_report([one], "phq9", P, AS_OF).overall
    w2, w4, w8 = horizon(report, 2), horizon(report, 4), horizon(report, 8)
    assert (w2.n_scored, w2.response.events, w2.response.n) == (1, 1, 1)
    assert w2.remission is not None and (w2.remission.events, w2.remission.n) == (0, 1)
    assert w2.change.median == -12
    assert w4.remission is not None and w4.remission.rate == 1.0
    assert w4.change.median == -16
    # Wilson for 1/1: low = 1 / (1 + z^2) = 1 / 4.841459 = 0.2065
    assert round(w4.remission.ci_low or 0, 4) == 0.2065 and w4.remission.ci_high == 1.0
    assert w8.n_scored == 0 and w8.response.rate is None
    # Time to response: first responding score on day 14; S(14) = 0.
    assert report.time_to_response.median == 14.0


def test_window_edges_and_the_later_of_equal_distances() -> None:
    # Week 2 = day 14 +- 7. Course a: day 10 (=16) and day 18 (=6) both 4 days away -> the
    # later, 6. Course b: day 21 exactly is inside (=9); course c: day 21.5 is outside, and
    # day 6.5 is outside too.
    a = course("a", {0: 20, 10: 16, 18: 6})
    b = course("b", {0: 20, 21: 9})
    c = course("c", {0: 20, 6.5: 2, 21.5: 2})
    w2 = horizon(cohort_report([a, b, c], "phq9", P, AS_OF).overall, 2)
    assert w2.n_scored == 2
    # a: 20 -> 6 response; b: 20 -> 9 response (11 >= 10). Changes -14 and -11.
    assert (w2.response.events, w2.response.n) == (2, 2)
    assert w2.change.median == -12.5 and w2.change.q1 == -13.25 and w2.change.q3 == -11.75


def test_the_closest_score_wins_over_a_later_one() -> None:
    # Week 4 = day 28 +- 7: day 27 (=5) is 1 day away, day 33 (=18) 5 days away -> 5.
    a = course("a", {0: 12, 27: 5, 33: 18})
    w4 = horizon(cohort_report([a], "phq9", P, AS_OF).overall, 4)
    assert w4.change.median == -7 and w4.response.events == 1


def test_response_and_remission_only_where_they_apply() -> None:
    # a: B = 8 < 10 -> scored, change counted, response/remission not applicable.
    # b: no baseline (the only earlier score is 31 days before the first dose) -> scored only.
    # c: B = 10, week 8 score 5: 10 - 5 = 5 >= 5 response; 5 is not < 5, no remission.
    a = course("a", {-2: 8, 56: 2})
    b = course("b", {-31: 25, 56: 2})
    c = course("c", {0: 10, 56: 5})
    w8 = horizon(cohort_report([a, b, c], "phq9", P, AS_OF).overall, 8)
    assert w8.n_scored == 3
    assert (w8.response.n, w8.response.events) == (1, 1)
    assert w8.remission is not None and (w8.remission.n, w8.remission.events) == (1, 0)
    assert w8.change.n == 2 and w8.change.median == -5.5  # changes -6 and -5


def test_scores_after_the_course_ended_do_not_count() -> None:
    a = course("a", {0: 20, 14: 3}, ended=10)
    report = cohort_report([a], "phq9", P, AS_OF).overall
    assert horizon(report, 2).n_scored == 0 and report.n_followed_up == 0


def test_gad7_has_response_but_no_remission() -> None:
    # GAD-7: response needs B >= 8; B = 8, score 4: 8 - 4 = 4 >= 4 -> response.
    a = course("a", {0: 8, 14: 4})
    w2 = horizon(cohort_report([a], "gad7", P, AS_OF).overall, 2)
    assert w2.response.events == 1 and w2.remission is None


def test_time_to_response_kaplan_meier_by_hand() -> None:
    # a responds on day 14; b is censored on day 20 (last score, no response); c responds on
    # day 28; d has no follow-up and takes no part. At 14: 1/3 -> S = 2/3; at 28 (one at
    # risk): S = 0. Median: the first time with S <= 0.5 -> 28.
    a = course("a", {0: 20, 14: 9})
    b = course("b", {0: 20, 20: 15})
    c = course("c", {0: 20, 7: 18, 28: 10})
    d = course("d", {0: 20})
    report = cohort_report([a, b, c, d], "phq9", P, AS_OF).overall
    assert report.n_started == 4 and report.n_followed_up == 3
    curve = report.time_to_response
    assert (curve.n, curve.events) == (3, 2)
    assert [(s.time, s.at_risk, round(s.survival, 4)) for s in curve.steps] == [
        (14.0, 3, 0.6667),
        (20.0, 2, 0.6667),
        (28.0, 1, 0.0),
    ]
    assert curve.median == 28.0


def test_time_to_confirmed_relapse_follows_the_section_5_example() -> None:
    # Section 5's worked example, shifted: six doses on days -6..-1 (first dose day -6),
    # B = 22 on day -7, PHQ-9 6, 7, 11, 13, 14 on days 0, 7, 14, 21, 26 -> relapse confirmed
    # on day 26, i.e. 32 days after the first dose. With the last score on day 24 instead:
    # only 3 days between hits -> censored at 30 days.
    doses = (-6, -5, -4, -3, -2, -1)
    relapsed = course("a", {-7: 22, 0: 6, 7: 7, 14: 11, 21: 13, 26: 14}, doses=doses)
    watched = course("b", {-7: 22, 0: 6, 7: 7, 14: 11, 21: 13, 24: 14}, doses=doses)
    curve = cohort_report([relapsed, watched], "phq9", P, AS_OF).overall.time_to_relapse
    assert [(s.time, s.events, s.censored) for s in curve.steps] == [(30.0, 0, 1), (32.0, 1, 0)]


def test_groups_are_counted_apart_and_sum_to_the_whole() -> None:
    a = course("a", {0: 20, 14: 4}, group="iv")
    b = course("b", {0: 20, 14: 15}, group="intranasal")
    c = course("c", {0: 20}, group="iv")
    report = cohort_report([a, b, c], "phq9", P, AS_OF, grouped=True)
    assert [g.group for g in report.groups] == ["intranasal", "iv"]
    iv = report.groups[1]
    assert iv.n_started == 2 and horizon(iv, 2).response.events == 1
    assert horizon(report.groups[0], 2).response.events == 0
    assert report.overall.n_started == 3 and horizon(report.overall, 2).response.n == 2


def test_booster_counts_sort_as_numbers() -> None:
    courses = [course(str(i), {0: 20}, group=str(n)) for i, n in enumerate((10, 2, 0))]
    groups = cohort_report(courses, "phq9", P, AS_OF, grouped=True).groups
    assert [g.group for g in groups] == ["0", "2", "10"]


# --- properties ---------------------------------------------------------------------------


def _random_cohort(rng: random.Random, size: int) -> list[CourseRecord]:
    out = []
    for i in range(size):
        scores = {-rng.randint(0, 3): rng.randint(5, 27)}
        for _ in range(rng.randint(0, 12)):
            scores[rng.uniform(0.5, 200)] = rng.randint(0, 27)
        out.append(course(f"c{i}", scores, group=rng.choice(["iv", "im"])))
    return out


def _rates(report):  # type: ignore[no-untyped-def]
    return [
        (h.response.rate, h.remission.rate if h.remission else None, h.change)
        for h in report.horizons
    ]


def test_adding_a_course_without_follow_up_changes_no_rate() -> None:
    rng = random.Random(11)
    for _ in range(20):
        cohort = _random_cohort(rng, 15)
        before = cohort_report(cohort, "phq9", P, AS_OF).overall
        lonely = course("lonely", {-1: rng.randint(10, 27)})
        after = cohort_report([*cohort, lonely], "phq9", P, AS_OF).overall
        assert after.n_started == before.n_started + 1
        assert _rates(after) == _rates(before)
        assert after.time_to_response == before.time_to_response
        assert after.time_to_relapse == before.time_to_relapse


def test_reordering_submissions_changes_nothing() -> None:
    rng = random.Random(5)
    for _ in range(20):
        cohort = _random_cohort(rng, 12)
        shuffled = [
            CourseRecord(
                c.course_id,
                c.group,
                tuple(rng.sample(c.dose_times, len(c.dose_times))),
                c.induction_doses,
                c.ended_at,
                tuple(rng.sample(c.scores, len(c.scores))),
            )
            for c in rng.sample(cohort, len(cohort))
        ]
        assert cohort_report(cohort, "phq9", P, AS_OF, grouped=True) == cohort_report(
            shuffled, "phq9", P, AS_OF, grouped=True
        )


def test_every_reported_interval_contains_its_rate() -> None:
    rng = random.Random(3)
    report = cohort_report(_random_cohort(rng, 200), "phq9", P, AS_OF)
    checked = 0
    for h in report.overall.horizons:
        for p in (h.response, h.remission):
            if p is not None and p.rate is not None:
                assert p.ci_low is not None and p.ci_high is not None
                assert p.ci_low <= p.rate <= p.ci_high
                checked += 1
    assert checked >= 5


def test_relapse_time_is_the_first_time_the_booster_signal_confirms() -> None:
    # The definition, brute force: ask section 5's booster_signal at every follow-up score
    # time; the report's first confirmed relapse must be the first time it says so.
    from kap_outcomes.clinical.booster import booster_signal
    from kap_outcomes.clinical.change import course_baseline
    from kap_outcomes.outcomes.cohort import course_outcome

    rng = random.Random(17)
    checked = confirmed = 0
    for n in range(300):
        scores: dict[float, int] = {-1: rng.randint(10, 27)}
        for _ in range(rng.randint(1, 14)):
            scores[float(rng.randint(1, 120))] = rng.choice([rng.randint(0, 6), rng.randint(8, 27)])
        doses = tuple(sorted(rng.sample(range(0, 60), rng.randint(4, 9))))
        one = course(f"r{n}", scores, doses=(0, *doses))
        outcome = course_outcome(one, "phq9", P, AS_OF)
        points = sorted(one.scores, key=lambda s: s.administered_at)
        baseline = course_baseline(points, first_dose_at=one.first_dose_at, policy=P)
        expected = None
        if baseline is not None and baseline.total >= 10:
            for s in points:
                if s.administered_at <= one.first_dose_at:
                    continue
                status = booster_signal(
                    scores=points,
                    dose_times=one.dose_times,
                    induction_doses=6,
                    baseline=baseline,
                    now=s.administered_at,
                    policy=P,
                ).status
                if status == "consider_booster":
                    expected = (s.administered_at - one.first_dose_at) / timedelta(days=1)
                    break
        if outcome.time_to_relapse is None:
            assert expected is None
            continue
        checked += 1
        days, event = outcome.time_to_relapse
        assert event == (expected is not None), n
        if expected is not None:
            confirmed += 1
            assert days == expected, n
    assert checked > 100 and confirmed > 10
