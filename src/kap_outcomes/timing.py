"""Validators for client timestamps: an offset is required, the future is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import AfterValidator

CLOCK_SKEW = timedelta(minutes=5)


def _not_in_future(value: datetime) -> datetime:
    if value > datetime.now(UTC) + CLOCK_SKEW:
        raise ValueError("lies in the future (more than 5 minutes of clock skew)")
    return value.astimezone(UTC)


NotInFuture = AfterValidator(_not_in_future)
