"""API shapes of the organisation's settings."""

from __future__ import annotations

from functools import cache
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator


@cache
def iana_names() -> frozenset[str]:
    """Every IANA time zone name this installation knows (system data or the tzdata package)."""
    return frozenset(available_timezones())


class OrganisationSettings(BaseModel):
    id: str
    slug: str
    timezone: str = Field(
        description=(
            "IANA time zone name: every date shown to people (reason sentences, reports, "
            "the dashboard) is a calendar date in this zone. Intervals stay elapsed time."
        )
    )
    version: int = Field(description="The settings' ETag; +1 per change")


class OrganisationSettingsUpdate(BaseModel):
    """The whole settings document; a field left out takes its default."""

    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(
        default="UTC",
        min_length=1,
        max_length=64,
        examples=["America/Los_Angeles"],
        description="An IANA time zone name, such as Europe/Berlin (default UTC).",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in iana_names():
            raise ValueError("must be an IANA time zone name, such as America/Los_Angeles")
        return value
