"""The access tokens issued to backend clients: HS256 JWTs (RFC 9068 profile) of 5 minutes.

They are self-contained, so reading one costs no query; whether its client is still
registered is checked on every use (:mod:`kap_outcomes.auth.dependencies`).

PyJWT (and with it cryptography) is imported by the first token issued or read, not with this
module: a process that handles none (most starts, every command but ``serve``) never loads it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from kap_outcomes.config import ConfigError, Settings
from kap_outcomes.db import new_id

ACCESS_TOKEN_LIFETIME = timedelta(seconds=300)
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105  (a media type, not a secret)
_ALGORITHM = "HS256"
_MAX_TOKEN_LENGTH = 4096
TOKEN_PATH = "/oauth/token"  # noqa: S105  (a path)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    client_id: str
    organisation_id: str
    scope: str


@lru_cache(maxsize=1)
def _process_key() -> bytes:
    """The development and test default: random per process (see ``Settings.signing_key``)."""
    return secrets.token_bytes(32)


_PLACEHOLDER_WORDS = ("change", "placeholder", "example", "secret", "password", "default")

MIN_KEY_LENGTH = 32
MIN_KEY_GUESSES_LOG10 = 24.0
"""A key must not be guessable in fewer than 10^24 tries (about 80 bits) by zxcvbn's estimate,
which finds repeats, sequences, keyboard walks, words and dates; 32 random hexadecimal digits
(128 bits) score 27 or more, a repeated ``abcdefghijkl`` about 2."""
_ESTIMATED_CHARACTERS = 72  # zxcvbn's limit; a longer key is judged by its start
KEY_HOW_TO = 'make one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'


class SigningKeyError(ConfigError):
    """KAP_SIGNING_KEY is missing or unfit; the message is one line, the key never in it."""


def looks_like_placeholder(secret: str) -> bool:
    """A value someone forgot to replace: it has a telltale word. (Too few distinct
    characters is no sign: 32 random hexadecimal digits often have fewer than 12.)"""
    lowered = secret.lower()
    return any(word in lowered for word in _PLACEHOLDER_WORDS)


@lru_cache(maxsize=8)
def _guesses_log10(secret: str) -> float:
    from zxcvbn import zxcvbn  # a key is judged once per process; its import builds dictionaries

    return float(zxcvbn(secret[:_ESTIMATED_CHARACTERS])["guesses_log10"])


def signing_key_problem(secret: str, *, environment: str) -> str | None:
    """Why ``secret`` may not sign access tokens, or None when it may.

    Too short is refused everywhere; a placeholder or a guessable key outside development.
    """
    if len(secret) < MIN_KEY_LENGTH:
        return f"KAP_SIGNING_KEY: too short ({len(secret)} characters, {MIN_KEY_LENGTH} or more)"
    if environment == "development":
        return None
    if looks_like_placeholder(secret):
        return "KAP_SIGNING_KEY looks like a placeholder"
    if _guesses_log10(secret) < MIN_KEY_GUESSES_LOG10:
        return (
            "KAP_SIGNING_KEY: guessable (a repeated pattern, a sequence, words or a keyboard walk)"
        )
    return None


@dataclass(frozen=True, slots=True)
class TokenIssuer:
    """Signs and verifies access tokens; ``issuer`` is the service's public base URL."""

    signing_key: bytes
    issuer: str

    @property
    def token_url(self) -> str:
        return self.issuer + TOKEN_PATH

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenIssuer:
        if settings.signing_key is not None:
            secret = settings.signing_key.get_secret_value()
            problem = signing_key_problem(secret, environment=settings.environment)
            if problem is not None:
                raise SigningKeyError(f"{problem}; {KEY_HOW_TO}")
            key = secret.encode()
        elif settings.environment != "development":
            raise SigningKeyError(
                f"KAP_SIGNING_KEY: required outside development ({settings.environment}); "
                + KEY_HOW_TO
            )
        else:
            key = _process_key()
        return cls(signing_key=key, issuer=settings.public_base_url.rstrip("/"))

    def issue(self, *, client_id: str, organisation_id: str, scope: str, now: datetime) -> str:
        claims = {
            "iss": self.issuer,
            "aud": self.issuer,
            "sub": client_id,
            "client_id": client_id,
            "org": organisation_id,
            "role": "integration",
            "scope": scope,
            "jti": new_id(),
            "iat": int(now.timestamp()),
            "exp": int((now + ACCESS_TOKEN_LIFETIME).timestamp()),
        }
        import jwt

        return jwt.encode(
            claims, self.signing_key, algorithm=_ALGORITHM, headers={"typ": ACCESS_TOKEN_TYPE}
        )

    def verify(self, token: str) -> AccessClaims | None:
        """The claims of a token of ours that is intact and unexpired; otherwise None."""
        if len(token) > _MAX_TOKEN_LENGTH:
            return None
        import jwt

        try:
            decoded = jwt.api_jwt.decode_complete(
                token,
                self.signing_key,
                algorithms=[_ALGORITHM],
                issuer=self.issuer,
                audience=self.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
        except jwt.PyJWTError:
            return None
        claims = decoded["payload"]
        client_id, org, scope = claims.get("sub"), claims.get("org"), claims.get("scope")
        if (
            decoded["header"].get("typ") != ACCESS_TOKEN_TYPE
            or claims.get("role") != "integration"
            or not isinstance(client_id, str)
            or not isinstance(org, str)
            or not isinstance(scope, str)
        ):
            return None
        return AccessClaims(client_id=client_id, organisation_id=org, scope=scope)
