"""The roles a token or a session holds: an enum of the standard library alone, so that the
command line can offer them before it imports any model (auth.models re-exports it)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    clinician = "clinician"
    integration = "integration"
    patient = "patient"
