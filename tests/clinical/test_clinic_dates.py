"""Dates in reason sentences are the clinic's calendar dates (clinical-rules.md section 8).

By hand: 2026-11-28T04:00Z is 20:00 on 27 November in California (PST, UTC-8), so a clinic in
America/Los_Angeles reads "27 November" where UTC reads "28 November". Intervals stay elapsed
time: the days since the dose are the same in either zone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from kap_outcomes.clinical.booster import booster_signal
from kap_outcomes.clinical.points import ScorePoint
from kap_outcomes.clinical.policy import DEFAULT_POLICY

LATE_EVENING_IN_CALIFORNIA = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
LA = ZoneInfo("America/Los_Angeles")


def _stable(zone=None):
    doses = [LATE_EVENING_IN_CALIFORNIA - timedelta(days=d) for d in (12, 10, 8, 6, 4, 2)]
    baseline = ScorePoint("b", doses[0] - timedelta(days=1), 22)
    score = ScorePoint("s", LATE_EVENING_IN_CALIFORNIA, 6)
    kwargs = {"zone": zone} if zone is not None else {}
    return booster_signal(
        scores=[baseline, score],
        dose_times=doses,
        baseline=baseline,
        now=LATE_EVENING_IN_CALIFORNIA + timedelta(hours=1),
        policy=DEFAULT_POLICY,
        **kwargs,
    )


def test_a_late_evening_score_shows_the_local_date():
    signal = _stable(LA)
    assert signal.status == "stable"
    detail = signal.reasons[0].detail
    assert detail.startswith("PHQ-9 6 on 2026-11-27 ")
    assert "2026-11-28" not in detail
    # the latest dose, 2 days earlier at the same hour, is 25 November in California
    assert "latest dose on 2026-11-25" in detail


def test_utc_is_the_default_and_intervals_do_not_move():
    utc, local = _stable(), _stable(LA)
    assert utc.reasons[0].detail.startswith("PHQ-9 6 on 2026-11-28 ")
    assert utc.days_since_last_dose == local.days_since_last_dose == 2
    assert (utc.status, utc.nadir, utc.latest) == (local.status, local.nadir, local.latest)
