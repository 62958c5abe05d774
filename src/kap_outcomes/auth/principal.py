"""Who is calling: the principal every use case receives, with no HTTP and no SQL of its own.

Kept apart from :mod:`kap_outcomes.auth.service` (which resolves a token to a principal with a
query) so that the HTTP vocabulary (``http.py``), idempotency and every domain can name the
caller without importing the authentication use cases.
"""

from __future__ import annotations

from dataclasses import dataclass

from kap_outcomes.auth.models import Role


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: one token of one organisation, with one role."""

    token_id: str
    organisation_id: str
    role: Role
    patient_id: str | None

    @property
    def is_patient(self) -> bool:
        return self.role is Role.patient
