"""Signing as the Standard Webhooks specification says, with its reference implementation.

``webhook-id`` is the event id (the receiver's idempotency key: a redelivery carries the same
one), ``webhook-timestamp`` the Unix time of the attempt, ``webhook-signature`` one
``v1,<base64 HMAC-SHA256>`` per secret in force: after a rotation the previous secret signs
too for a day, so a receiver can switch secrets without losing deliveries.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix the specification gives secrets


def new_secret() -> str:
    """``whsec_`` and 32 random bytes in base64 (what the specification's libraries take)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def headers(
    *, secrets_in_force: Sequence[str], event_id: str, at: datetime, body: str
) -> dict[str, str]:
    signatures = " ".join(
        _signer(secret).sign(msg_id=event_id, timestamp=at, data=body)
        for secret in secrets_in_force
    )
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }


@lru_cache(maxsize=256)
def _signer(secret: str) -> Webhook:
    """The reference implementation's signer of a secret, made once (it decodes the secret):
    every delivery to an endpoint signs with the same one or two."""
    return Webhook(secret)
