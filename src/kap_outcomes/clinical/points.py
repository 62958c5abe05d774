"""The one input shape the change, trend and booster rules share: a valid score."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ScorePoint:
    """One valid total of one instrument (invalid assessments never become points)."""

    assessment_id: str
    administered_at: datetime
    total: int

    def __post_init__(self) -> None:
        # Naive and aware datetimes cannot be compared; refuse naive ones up front.
        if self.administered_at.utcoffset() is None:
            raise ValueError("administered_at must be timezone-aware")


def chronological(scores: Iterable[ScorePoint]) -> tuple[ScorePoint, ...]:
    """Scores oldest first; equal times ordered by assessment_id (input order never matters)."""
    return tuple(sorted(scores, key=lambda s: (s.administered_at, s.assessment_id)))
