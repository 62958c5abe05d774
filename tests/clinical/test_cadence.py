from datetime import UTC, datetime, timedelta

import pytest

from kap_outcomes.clinical.cadence import phq9_due
from kap_outcomes.clinical.policy import DEFAULT_POLICY

INDUCTION_DONE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(days: float) -> datetime:
    return INDUCTION_DONE + timedelta(days=days)


CADENCE = [
    # (induction completed (day or None), last PHQ-9 (day or None), now (day), due, days)
    (None, None, 0, False, None),  # no induction completed: the cadence has not started
    (None, -20, 0, False, 20),
    (5, -3, 0, False, 3),  # induction completes in the future
    (0, None, 0, True, None),  # after induction, never measured: due
    (0, None, 30, True, None),
    (0, -3, 0, False, 3),  # a PHQ-9 from before induction counts
    (0, 10, 16.9, False, 6),  # first 8 weeks: weekly
    (0, 10, 17, True, 7),
    (0, 40, 55.9, True, 15),
    (0, 50, 56.9, False, 6),
    (0, 49, 56, False, 7),  # from week 8 on: every 14 days
    (0, 50, 63.9, False, 13),
    (0, 50, 64, True, 14),
    (0, 100, 113.99, False, 13),
    (0, 100, 114, True, 14),
    (0, 1 / 24 / 12, 0, False, 0),  # 5 minutes of clock skew: never negative
]


@pytest.mark.parametrize(("induction", "last", "now", "due", "days"), CADENCE)
def test_phq9_due(
    induction: float | None, last: float | None, now: float, due: bool, days: int | None
) -> None:
    result = phq9_due(
        induction_completed_at=None if induction is None else at(induction),
        last_phq9_at=None if last is None else at(last),
        now=at(now),
        policy=DEFAULT_POLICY,
    )
    assert result == (due, days)
