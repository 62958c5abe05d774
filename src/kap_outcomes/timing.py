"""Validators for client timestamps: an offset is required, the future is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

CLOCK_SKEW = timedelta(minutes=5)


def _to_utc(value: datetime) -> datetime:
    """Normalise to UTC; a time whose UTC form lies outside year 1..9999 is a 422, not a 500."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("lies outside the range of representable timestamps") from None


def _not_in_future(value: datetime) -> datetime:
    value = _to_utc(value)
    if value > datetime.now(UTC) + CLOCK_SKEW:
        raise ValueError("lies in the future (more than 5 minutes of clock skew)")
    return value


ToUTC = AfterValidator(_to_utc)
NotInFuture = AfterValidator(_not_in_future)

Timestamp = Annotated[AwareDatetime, ToUTC]
"""Every client timestamp: an offset required, normalised to UTC, and a 422 naming the field
when its UTC form lies outside year 1..9999 (``9999-12-31T23:59:59-14:00``), so no such value
reaches a database column."""
PastTimestamp = Annotated[AwareDatetime, NotInFuture]
"""A :data:`Timestamp` of something that has happened (clock skew tolerated)."""
