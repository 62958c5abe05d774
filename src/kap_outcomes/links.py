"""Absolute URLs the service emits, all from ``KAP_PUBLIC_BASE_URL``.

A client's ``Host``, ``X-Forwarded-Host`` or ``Forwarded`` header never reaches a link: a
``Location``, a Bundle link, a ``fullUrl``, the CapabilityStatement, SMART discovery and the
token audience are all built from the configured public address. Production refuses to start
while that address is still the development default.
"""

from __future__ import annotations

from kap_outcomes.config import ConfigError, Settings

FHIR_PATH = "/fhir/R4"


def public_base(settings: Settings) -> str:
    return settings.public_base_url.rstrip("/")


def require_public_base_url(settings: Settings) -> None:
    """Production must say where it is reachable: links built from the default would point
    clients (and their tokens) at the wrong place."""
    default = Settings.model_fields["public_base_url"].default
    if settings.environment == "production" and public_base(settings) == default.rstrip("/"):
        raise ConfigError(
            "KAP_PUBLIC_BASE_URL: required in production (it is still the default "
            f"{default}); set the service's public address, e.g. https://outcomes.example.org"
        )
