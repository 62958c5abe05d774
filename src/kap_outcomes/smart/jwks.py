"""The public keys of a backend client (a JWK Set): what may be registered, and the key that
verifies an assertion.

PyJWT and cryptography are imported by the first key looked at (as in smart.tokens).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kap_outcomes.errors import FieldProblem

if TYPE_CHECKING:
    import jwt

ALGORITHMS = {"RS384": "RSA", "ES384": "EC"}
"""The assertion algorithms accepted (SMART Backend Services) and the key type of each."""

PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
"""JWK members that carry secret material (RFC 7518 §6.2.2, §6.3.2, §6.4)."""

MIN_RSA_BITS = 2048
MIN_RSA_EXPONENT = 65537
MAX_RSA_EXPONENT = 2**256
"""65537 <= e < 2**256 (NIST SP 800-56B Rev. 2 §6.2.1; FIPS 186-5 A.1.1): a small e invites
the attacks on low exponents, a huge one makes every verification as slow as a signature."""
MAX_KID_LENGTH = 255
MAX_KEYS = 10
"""Keys in one set (registered inline, or read from a jwks_uri)."""


def _key_problems(key: dict[str, Any], pointer: str) -> list[FieldProblem]:
    private = [m for m in PRIVATE_MEMBERS if m in key]
    if private:
        return [
            FieldProblem(
                pointer=f"{pointer}/{private[0]}",
                detail="private key material is refused: register the public key only",
            )
        ]
    kty = key.get("kty")
    if kty not in ("RSA", "EC"):
        return [FieldProblem(pointer=f"{pointer}/kty", detail="kty must be RSA or EC")]
    kid = key.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
        return [FieldProblem(pointer=f"{pointer}/kid", detail="a kid of 1 to 255 characters")]
    algorithm = "RS384" if kty == "RSA" else "ES384"
    if key.get("alg", algorithm) != algorithm:
        return [FieldProblem(pointer=f"{pointer}/alg", detail=f"alg must be {algorithm}")]
    if key.get("use", "sig") != "sig":
        return [FieldProblem(pointer=f"{pointer}/use", detail="use must be sig")]
    if kty == "EC" and key.get("crv") != "P-384":
        return [FieldProblem(pointer=f"{pointer}/crv", detail="crv must be P-384")]
    parsed = load_key(key, algorithm)
    if parsed is None:
        return [FieldProblem(pointer=pointer, detail=f"not a valid {kty} public key")]
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    if isinstance(parsed.key, RSAPublicKey):
        if parsed.key.key_size < MIN_RSA_BITS:
            return [FieldProblem(pointer=f"{pointer}/n", detail="RSA keys of 2048 bits or more")]
        if not MIN_RSA_EXPONENT <= parsed.key.public_numbers().e < MAX_RSA_EXPONENT:
            return [
                FieldProblem(
                    pointer=f"{pointer}/e",
                    detail="an RSA public exponent from 65537 (AQAB) up to 2**256",
                )
            ]
    return []


def jwks_problems(keys: list[dict[str, Any]]) -> list[FieldProblem]:
    """Everything wrong with a JWK Set offered for registration (empty: it is fine)."""
    problems: list[FieldProblem] = []
    kids: set[Any] = set()
    for index, key in enumerate(keys):
        pointer = f"/jwks/keys/{index}"
        found = _key_problems(key, pointer)
        if not found and key["kid"] in kids:
            found = [FieldProblem(pointer=f"{pointer}/kid", detail="kid must be unique")]
        kids.add(key.get("kid"))
        problems.extend(found)
    return problems


def usable_keys(keys: list[Any]) -> list[dict[str, Any]]:
    """The keys of a fetched set that could be registered (first of each kid); the others
    (encryption keys, other types, weak or private keys) are left out."""
    usable: list[dict[str, Any]] = []
    kids: set[str] = set()
    for key in keys[:MAX_KEYS]:
        if isinstance(key, dict) and not _key_problems(key, "") and key["kid"] not in kids:
            kids.add(key["kid"])
            usable.append(key)
    return usable


def load_key(key: dict[str, Any], algorithm: str) -> jwt.PyJWK | None:
    """The public key of a JWK for ``algorithm``, or None when it is not one."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    try:
        parsed = jwt.PyJWK(key, algorithm=algorithm)
    except Exception:  # whatever the JWK holds, it is not a usable key
        return None
    if not isinstance(parsed.key, RSAPublicKey | EllipticCurvePublicKey):
        return None
    return parsed


def find_key(jwks: dict[str, Any], kid: str, algorithm: str) -> jwt.PyJWK | None:
    """The registered key named ``kid``, if its type fits ``algorithm``."""
    kty = ALGORITHMS.get(algorithm)
    for key in jwks.get("keys", ()):
        if isinstance(key, dict) and key.get("kid") == kid and key.get("kty") == kty:
            return load_key(key, algorithm)
    return None
