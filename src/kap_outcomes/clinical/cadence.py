"""PHQ-9 measurement cadence (clinical-rules.md section 5, "Measurement cadence")."""

from __future__ import annotations

from datetime import datetime, timedelta

from kap_outcomes.clinical.policy import Policy


def phq9_due(
    *,
    induction_completed_at: datetime | None,
    last_phq9_at: datetime | None,
    now: datetime,
    policy: Policy,
) -> tuple[bool, int | None]:
    """(due, days_since_last_phq9) as of `now`.

    ENG (relapse is fastest in the first weeks): from induction completion for
    `cadence_early_period_days` (8 weeks) a PHQ-9 is due when none was taken in the last
    7 days, after that when none was taken in the last 14 days. Due means the interval has
    fully elapsed (exactly 7 days after the last PHQ-9 it is due). Any valid PHQ-9 counts,
    including one taken before induction completed.

    Decisions beyond the spec:
    - Before induction completes (`induction_completed_at` None or later than `now`),
      nothing is due: the cadence is defined for the post-induction period; baseline and
      induction measurements follow the treatment protocol, not this rule.
    - After induction, with no PHQ-9 at all, a PHQ-9 is due.
    - days_since_last_phq9 counts whole 24-hour periods, is None without a PHQ-9 and is
      never negative (a score up to the allowed clock skew ahead of `now` counts as 0).
    """
    days_since = None
    if last_phq9_at is not None:
        days_since = max((now - last_phq9_at).days, 0)
    if induction_completed_at is None or induction_completed_at > now:
        return False, days_since
    if last_phq9_at is None:
        return True, days_since
    early_until = induction_completed_at + timedelta(days=policy.cadence_early_period_days)
    interval_days = (
        policy.cadence_early_interval_days
        if now < early_until
        else policy.cadence_late_interval_days
    )
    return now - last_phq9_at >= timedelta(days=interval_days), days_since
