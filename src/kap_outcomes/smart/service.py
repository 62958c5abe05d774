"""Use cases of SMART Backend Services: registering a client, and the client_credentials
grant authenticated by a signed assertion (RFC 7523 §2.2, SMART App Launch 2.0)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import jwt
from jwt.utils import base64url_decode
from sqlalchemy import Connection

from kap_outcomes import json_bodies
from kap_outcomes.auth.service import Principal
from kap_outcomes.db import new_id, utcnow
from kap_outcomes.errors import FieldProblem, invalid, not_found
from kap_outcomes.smart import repository, scopes
from kap_outcomes.smart.jwks import ALGORITHMS, MAX_KID_LENGTH, find_key, jwks_problems
from kap_outcomes.smart.models import ClientCreate, ClientPublic, TokenResponse
from kap_outcomes.smart.tokens import ACCESS_TOKEN_LIFETIME, TokenIssuer

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = timedelta(minutes=5)
CLOCK_SKEW = timedelta(seconds=30)
"""Tolerated difference between the client's clock and ours, on ``exp`` both ways."""
MAX_JTI_LENGTH = 255
_CLIENT_ID = re.compile(r"[A-Za-z0-9\-]{1,36}")
NUMERIC_DATES = ("exp", "iat", "nbf")
LATEST_NUMERIC_DATE = 253402300799
"""The last second a datetime can hold (9999-12-31T23:59:59Z): any NumericDate beyond it, or
before 1970, is not a time an assertion could mean."""
_FORM = "application/x-www-form-urlencoded"


@dataclass
class OAuthError(Exception):
    """An error of the token endpoint, answered as RFC 6749 §5.2 JSON (never a problem
    document: OAuth clients read ``error``)."""

    error: str
    description: str
    status: int = 400

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def _client_error(description: str) -> OAuthError:
    return OAuthError("invalid_client", description, status=401)


def _grant_error(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


# --- registration ---------------------------------------------------------------------------


def register_client(conn: Connection, *, principal: Principal, data: ClientCreate) -> ClientPublic:
    requested, refused = scopes.parse_scopes(data.scope)
    problems = [
        FieldProblem(
            pointer="/scope",
            detail=f"not a SMART v2 system scope of a resource served here: {word[:80]!r}",
        )
        for word in refused
    ]
    if not requested and not refused:
        problems.append(FieldProblem(pointer="/scope", detail="at least one system scope"))
    problems.extend(jwks_problems(data.jwks.keys))
    if problems:
        raise invalid(problems)
    client_id = new_id()
    now = utcnow()
    scope = scopes.join(requested)
    repository.insert_client(
        conn,
        client_id=client_id,
        organisation_id=principal.organisation_id,
        name=data.name,
        jwks={"keys": data.jwks.keys},
        scope=scope,
        now=now,
    )
    return ClientPublic(client_id=client_id, name=data.name, scope=scope, created_at=now)


def get_client(conn: Connection, *, principal: Principal, client_id: str) -> ClientPublic:
    row = repository.get_client(
        conn, organisation_id=principal.organisation_id, client_id=client_id
    )
    if row is None:
        raise not_found("Client")
    return ClientPublic(client_id=row.id, name=row.name, scope=row.scope, created_at=row.created_at)


# --- the token endpoint ---------------------------------------------------------------------


def parse_form(body: bytes, content_type: str) -> dict[str, str]:
    """The parameters of a token request (RFC 6749 §3.2: form-encoded, each at most once)."""
    if content_type.partition(";")[0].strip().lower() != _FORM:
        raise OAuthError("invalid_request", f"Send the parameters as {_FORM}.")
    try:
        parsed = parse_qs(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=20
        )
    except ValueError:  # not UTF-8, or too many fields
        raise OAuthError("invalid_request", "The form could not be read.") from None
    repeated = sorted(name for name, values in parsed.items() if len(values) > 1)
    if repeated:
        raise OAuthError("invalid_request", f"Parameter repeated: {repeated[0][:40]}")
    return {name: values[0] for name, values in parsed.items()}


@dataclass(frozen=True, slots=True)
class _Client:
    id: str
    organisation_id: str
    scope: str


def _check_claims(assertion: str) -> None:
    """The header's and the payload's JSON by the rules of every body (each name once,
    numbers within the grammar, checked as text before anything converts them), and ``exp``,
    ``iat`` and ``nbf`` NumericDates between 1970 and the year 9999 (RFC 7519 section 2):
    else ``invalid_grant``, naming the claim and never echoing its value."""
    for index, part in enumerate(("header", "claim")):
        try:
            segment = base64url_decode(assertion.split(".")[index].encode("ascii"))
        except (IndexError, ValueError):
            return  # not a JWS at all: the decoder says so
        problems = json_bodies.check(segment)
        if problems:
            name = problems[0].pointer.lstrip("/").split("/")[0]
            where = f"{part} {name[:40]}" if name else part.replace("claim", "claims")
            raise _grant_error(f"The client assertion's {where}: {problems[0].detail}.")
    try:
        claims = json.loads(segment)  # the payload, checked above
    except ValueError:
        return  # not JSON: the decoder says so
    if not isinstance(claims, dict):
        return
    for name in NUMERIC_DATES:
        if name not in claims:
            continue
        value = claims[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0 <= value <= LATEST_NUMERIC_DATE
        ):
            raise _grant_error(
                f"The client assertion's {name} must be a NumericDate: a number of "
                "seconds since 1970-01-01T00:00:00Z that names a calendar date."
            )


def _authenticate_client(
    conn: Connection, assertion: str, issuer: TokenIssuer
) -> tuple[_Client, str, datetime]:
    """The client that signed ``assertion``, the assertion's ``jti`` and its expiry.

    A failure to identify the client or to verify the signature is ``invalid_client``; a
    verified assertion whose claims do not hold (audience, expiry, ``jti``) is
    ``invalid_grant``. Neither description echoes the assertion.
    """
    _check_claims(assertion)  # as text, before any JSON library converts a number
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError, TypeError):
        raise _client_error("The client assertion is not a readable JWT.") from None
    algorithm, kid, client_id = header.get("alg"), header.get("kid"), unverified.get("iss")
    if algorithm not in ALGORITHMS:
        raise _client_error("The client assertion must be signed with RS384 or ES384.")
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
        raise _client_error("The client assertion's header must name its key (kid).")
    if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
        raise _client_error("The client assertion's iss must be the client_id.")
    row = repository.active_client(conn, client_id=client_id)
    if row is None:
        raise _client_error("Unknown or revoked client.")
    key = find_key(row.jwks, kid, algorithm)
    if key is None:
        raise _client_error("No registered key of the client matches the assertion's kid.")
    try:
        claims = jwt.decode(
            assertion,
            key.key,
            algorithms=[algorithm],
            audience=issuer.token_url,
            issuer=client_id,
            leeway=CLOCK_SKEW,
            options={"require": ["iss", "sub", "aud", "exp", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise _grant_error("The client assertion has expired.") from None
    except jwt.InvalidAudienceError:
        raise _grant_error(f"The assertion's aud must be {issuer.token_url}.") from None
    except jwt.MissingRequiredClaimError as exc:
        raise _grant_error(f"The client assertion lacks the {exc.claim} claim.") from None
    except jwt.DecodeError:  # includes a signature that does not verify
        raise _client_error("The client assertion's signature does not verify.") from None
    except jwt.PyJWTError:
        raise _grant_error("The client assertion's claims are not valid.") from None
    if claims.get("sub") != client_id:
        raise _grant_error("The client assertion's sub must be the client_id.")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
        raise _grant_error("The client assertion's jti must be 1 to 255 characters.")
    if "\x00" in jti:  # PostgreSQL cannot store it (JSON lets a claim carry one)
        raise _grant_error("The client assertion's jti must not contain NUL characters.")
    expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
    if expires > utcnow() + MAX_ASSERTION_LIFETIME + CLOCK_SKEW:
        raise _grant_error("The client assertion's exp is more than 5 minutes ahead.")
    client = _Client(id=row.id, organisation_id=row.organisation_id, scope=row.scope)
    return client, jti, expires


def exchange(conn: Connection, *, form: dict[str, str], issuer: TokenIssuer) -> TokenResponse:
    """``grant_type=client_credentials`` with a ``private_key_jwt`` assertion → an access token
    for the requested scopes (each within the client's registration)."""
    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required.")
    if grant_type != "client_credentials":
        raise OAuthError("unsupported_grant_type", "Only client_credentials is supported.")
    if form.get("client_assertion_type") != JWT_BEARER:
        raise _client_error(f"client_assertion_type must be {JWT_BEARER}.")
    assertion = form.get("client_assertion", "")
    if not assertion:
        raise _client_error("client_assertion is required.")
    client, jti, expires = _authenticate_client(conn, assertion, issuer)

    requested, refused = scopes.parse_scopes(form.get("scope", ""))
    if refused:
        raise OAuthError("invalid_scope", "Only SMART v2 system/ scopes can be granted.")
    if not requested:
        raise OAuthError("invalid_scope", "scope is required.")
    registered, _ = scopes.parse_scopes(client.scope)
    if not scopes.within(requested, registered):
        raise OAuthError("invalid_scope", "A requested scope exceeds the client's registration.")

    now = utcnow()
    if not repository.record_jti(
        conn, client_id=client.id, jti=jti, keep_until=expires + CLOCK_SKEW, now=now
    ):
        raise _grant_error("This client assertion (jti) was already used.")
    granted = scopes.join(requested)
    token = issuer.issue(
        client_id=client.id, organisation_id=client.organisation_id, scope=granted, now=now
    )
    return TokenResponse(
        access_token=token,
        token_type="bearer",  # noqa: S106  (the RFC 6750 token type)
        expires_in=int(ACCESS_TOKEN_LIFETIME.total_seconds()),
        scope=granted,
    )
