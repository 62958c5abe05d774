"""Bearer token secrets: random, shown once, stored as a SHA-256 hash.

Tokens carry 256 bits from :func:`secrets.token_urlsafe`, so a fast unsalted hash is enough
to make a leaked database useless for authentication (no dictionary to try). The lookup is by
hash; the final comparison uses :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_PREFIX = "kap_"  # noqa: S105  (a public marker, not a secret)
_TOKEN_BYTES = 32
# prefix + 43 url-safe characters
TOKEN_LENGTH = len(TOKEN_PREFIX) + 43


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(value: str) -> bool:
    return len(value) == TOKEN_LENGTH and value.startswith(TOKEN_PREFIX)


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
