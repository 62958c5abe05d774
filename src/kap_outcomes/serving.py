"""What the HTTP service refuses of its settings beyond their own validation.

``create_app`` judges its settings here, and so does ``kap-outcomes serve`` before it imports
the app: a refused setting is one line on stderr after a fraction of a second, not after the
whole app has been imported.
"""

from __future__ import annotations

from kap_outcomes.config import Settings
from kap_outcomes.links import require_public_base_url
from kap_outcomes.smart.tokens import TokenIssuer


def servable(settings: Settings) -> TokenIssuer:
    """The signer of SMART access tokens these settings give, or ``ConfigError``: production
    without a strong signing key, or still at the default public address."""
    token_issuer = TokenIssuer.from_settings(settings)  # refuses production without a key
    require_public_base_url(settings)  # links come from configuration, never from Host
    return token_issuer
