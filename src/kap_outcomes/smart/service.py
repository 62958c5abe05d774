"""Use cases of SMART Backend Services: registering a client, and the client_credentials
grant authenticated by a signed assertion (RFC 7523 §2.2, SMART App Launch 2.0)."""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from sqlalchemy import Connection

from kap_outcomes import json_bodies
from kap_outcomes.auth.service import Principal
from kap_outcomes.db import Database, new_id, utcnow
from kap_outcomes.errors import FieldProblem, conflict, invalid, not_found
from kap_outcomes.pagination import Page
from kap_outcomes.smart import repository, scopes
from kap_outcomes.smart.jwks import ALGORITHMS, MAX_KEYS, MAX_KID_LENGTH, find_key, jwks_problems
from kap_outcomes.smart.models import ClientCreate, ClientPublic, ClientUpdate, TokenResponse
from kap_outcomes.smart.remote_keys import KeySetUnavailable, RemoteKeySets
from kap_outcomes.smart.tokens import ACCESS_TOKEN_LIFETIME, TokenIssuer
from kap_outcomes.webhooks import egress
from kap_outcomes.webhooks.egress import EgressPolicy

if TYPE_CHECKING:
    import jwt  # imported where a client assertion is read (see smart.tokens)

log = logging.getLogger("kap_outcomes.smart")

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


# --- registration and management -----------------------------------------------------------


def _scope_problems(value: str) -> tuple[list[scopes.Scope], list[FieldProblem]]:
    requested, refused = scopes.parse_scopes(value)
    problems = [
        FieldProblem(
            pointer="/scope",
            detail=f"not a SMART system scope of a resource served here: {word[:80]!r}",
        )
        for word in refused
    ]
    if not requested and not refused:
        problems.append(FieldProblem(pointer="/scope", detail="at least one system scope"))
    return requested, problems


def _uri_problems(uri: str, policy: EgressPolicy) -> list[FieldProblem]:
    try:
        egress.check_registration(uri, policy)
    except egress.Refused as exc:
        return [FieldProblem(pointer="/jwks_uri", detail=f"refused: {exc}")]
    return []


async def _check_key_set_at(uri: str, remote: RemoteKeySets) -> None:
    """A jwks_uri must answer a usable key set now, through the egress rules (422 if not)."""
    problems = _uri_problems(uri, remote.rules.policy)
    if not problems:
        try:
            await remote.fetch(uri)
        except KeySetUnavailable as exc:
            problems = [FieldProblem(pointer="/jwks_uri", detail=f"no usable key set: {exc}")]
    if problems:
        raise invalid(problems)


def public(row: repository.Shown) -> ClientPublic:
    keys = (row.jwks or {}).get("keys", [])
    return ClientPublic(
        client_id=row.id,
        name=row.name,
        scope=row.scope,
        jwks_uri=row.jwks_uri,
        key_ids=[str(k.get("kid")) for k in keys],
        active=row.revoked_at is None,
        created_at=row.created_at,
        updated_at=row.updated_at,
        revoked_at=row.revoked_at,
    )


async def check_registration(data: ClientCreate, remote: RemoteKeySets) -> str:
    """Check a registration (a jwks_uri is fetched once, now, outside any transaction);
    the scope to store. Then :func:`insert_client` stores it (the route's unit of work)."""
    requested, problems = _scope_problems(data.scope)
    if (data.jwks is None) == (data.jwks_uri is None):
        problems.append(FieldProblem(pointer="/jwks", detail="give jwks or jwks_uri (one of them)"))
    elif data.jwks is not None:
        problems.extend(jwks_problems(data.jwks.keys))
    elif data.jwks_uri is not None:
        problems.extend(_uri_problems(data.jwks_uri, remote.rules.policy))
    if problems:
        raise invalid(problems)
    if data.jwks_uri is not None:
        await _check_key_set_at(data.jwks_uri, remote)
    return scopes.join(requested)


def insert_client(
    conn: Connection, *, principal: Principal, data: ClientCreate, scope: str
) -> ClientPublic:
    client_id = new_id()
    repository.insert_client(
        conn,
        client_id=client_id,
        organisation_id=principal.organisation_id,
        name=data.name,
        jwks=None if data.jwks is None else {"keys": data.jwks.keys},
        jwks_uri=data.jwks_uri,
        scope=scope,
        now=utcnow(),
    )
    return get_client(conn, principal=principal, client_id=client_id)


def _found(
    conn: Connection, principal: Principal, client_id: str, lock: bool = False
) -> repository.Shown:
    row = repository.get_client(
        conn, organisation_id=principal.organisation_id, client_id=client_id, for_update=lock
    )
    if row is None:
        raise not_found("Client")
    return row


def _active(conn: Connection, principal: Principal, client_id: str) -> repository.Shown:
    """The client, locked for a change; a revoked client cannot be changed (409)."""
    row = _found(conn, principal, client_id, lock=True)
    if row.revoked_at is not None:
        raise conflict("The client is revoked; register a new one.")
    return row


def get_client(conn: Connection, *, principal: Principal, client_id: str) -> ClientPublic:
    return public(_found(conn, principal, client_id))


def list_clients(conn: Connection, *, principal: Principal) -> Page[ClientPublic]:
    rows = repository.list_clients(conn, organisation_id=principal.organisation_id)
    return Page[ClientPublic](data=[public(r) for r in rows], next_cursor=None)


async def update_client(
    db: Database,
    *,
    principal: Principal,
    client_id: str,
    data: ClientUpdate,
    remote: RemoteKeySets,
) -> ClientPublic:
    """Rename, change the scopes (granted from the next token on), or replace the keys."""
    given = data.model_dump(exclude_unset=True)
    problems: list[FieldProblem] = []
    if not given or any(v is None for v in given.values()):
        problems.append(FieldProblem(pointer="", detail="give at least one member, none null"))
    values: dict[str, Any] = {}
    if data.name is not None:
        values["name"] = data.name
    if data.scope is not None:
        requested, found = _scope_problems(data.scope)
        problems.extend(found)
        values["scope"] = scopes.join(requested)
    if data.jwks is not None and data.jwks_uri is not None:
        problems.append(FieldProblem(pointer="/jwks", detail="give jwks or jwks_uri, not both"))
    elif data.jwks is not None:
        problems.extend(jwks_problems(data.jwks.keys))
        values |= {"jwks": {"keys": data.jwks.keys}, "jwks_uri": None}
    elif data.jwks_uri is not None:
        problems.extend(_uri_problems(data.jwks_uri, remote.rules.policy))
        values |= {"jwks": None, "jwks_uri": data.jwks_uri}
    if problems:
        raise invalid(problems)
    if data.jwks_uri is not None:
        await _check_key_set_at(data.jwks_uri, remote)

    def change(conn: Connection) -> ClientPublic:
        _active(conn, principal, client_id)
        repository.update_client(conn, client_id=client_id, now=utcnow(), **values)
        return get_client(conn, principal=principal, client_id=client_id)

    updated = await db.write(change)
    remote.forget(client_id)
    return updated


def add_key(
    conn: Connection, *, principal: Principal, client_id: str, key: dict[str, Any]
) -> ClientPublic:
    """One more public key beside the others (the first step of a rotation)."""
    row = _active(conn, principal, client_id)
    if row.jwks is None:
        raise conflict("The client's keys are published at its jwks_uri: rotate them there.")
    keys = list(row.jwks.get("keys", []))
    if len(keys) >= MAX_KEYS:
        raise conflict(f"The client has {MAX_KEYS} keys already; remove one first.")
    problems = jwks_problems([*keys, key])
    if problems:  # only the new key (the last) can be at fault: point into the body
        at = f"/jwks/keys/{len(keys)}"
        raise invalid([FieldProblem(q.detail, str(q.pointer).removeprefix(at)) for q in problems])
    repository.update_client(conn, client_id=client_id, now=utcnow(), jwks={"keys": [*keys, key]})
    return get_client(conn, principal=principal, client_id=client_id)


def remove_key(conn: Connection, *, principal: Principal, client_id: str, kid: str) -> None:
    """Remove a key (the last step of a rotation); assertions it signs are refused from now
    on. The last key cannot be removed: revoke the client instead."""
    row = _active(conn, principal, client_id)
    if row.jwks is None:
        raise conflict("The client's keys are published at its jwks_uri: remove the key there.")
    keys = list(row.jwks.get("keys", []))
    kept = [k for k in keys if k.get("kid") != kid]
    if len(kept) == len(keys):
        raise not_found("Key")
    if not kept:
        raise conflict("This is the client's only key; revoke the client instead (DELETE).")
    repository.update_client(conn, client_id=client_id, now=utcnow(), jwks={"keys": kept})


def revoke_client(conn: Connection, *, principal: Principal, client_id: str) -> None:
    """The client can get no more tokens, and the ones it has stop working at once. It stays
    listed (revoked): what it recorded still names it."""
    _found(conn, principal, client_id)
    repository.revoke_client(conn, client_id=client_id, now=utcnow())


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
    from jwt.utils import base64url_decode

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


@dataclass(frozen=True, slots=True)
class FetchedKeys:
    """The key set read from a client's jwks_uri before the token transaction (None and the
    reason when it could not be had)."""

    uri: str
    keys: dict[str, Any] | None


def _authenticate_client(
    conn: Connection, assertion: str, issuer: TokenIssuer, fetched: FetchedKeys | None = None
) -> tuple[_Client, str, datetime]:
    """The client that signed ``assertion``, the assertion's ``jti`` and its expiry.

    A failure to identify the client or to verify the signature is ``invalid_client``; a
    verified assertion whose claims do not hold (audience, expiry, ``jti``) is
    ``invalid_grant``. Neither description echoes the assertion.
    """
    _check_claims(assertion)  # as text, before any JSON library converts a number
    algorithm, kid, client_id = _unverified_names(assertion)
    row = repository.active_client(conn, client_id=client_id)
    if row is None:
        raise _client_error("Unknown or revoked client.")
    key = find_key(_key_set(row, fetched), kid, algorithm)
    if key is None:
        raise _client_error("No registered key of the client matches the assertion's kid.")
    claims = _verified_claims(assertion, key, algorithm, issuer=issuer, client_id=client_id)
    jti = _checked_jti(claims.get("jti"))
    expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
    if expires > utcnow() + MAX_ASSERTION_LIFETIME + CLOCK_SKEW:
        raise _grant_error("The client assertion's exp is more than 5 minutes ahead.")
    client = _Client(id=row.id, organisation_id=row.organisation_id, scope=row.scope)
    return client, jti, expires


def _unverified_names(assertion: str) -> tuple[str, str, str]:
    """The algorithm, key id and client id the assertion names, read before verifying it."""
    import jwt

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
    return str(algorithm), kid, client_id


def _key_set(row: Any, fetched: FetchedKeys | None) -> dict[str, Any]:
    """The client's key set: registered inline, or as fetched from its jwks_uri just before."""
    if row.jwks_uri is None:
        return dict(row.jwks or {})
    if fetched is not None and fetched.uri == row.jwks_uri and fetched.keys is not None:
        return fetched.keys
    raise _client_error("The client's key set (jwks_uri) could not be fetched.")


def _verified_claims(
    assertion: str, key: jwt.PyJWK, algorithm: str, *, issuer: TokenIssuer, client_id: str
) -> dict[str, Any]:
    """The assertion's claims, its signature, audience, issuer, expiry and subject verified."""
    import jwt

    try:
        claims: dict[str, Any] = jwt.decode(
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
    return claims


def _checked_jti(jti: Any) -> str:
    """The assertion's ``jti``: 1 to 255 characters, no NUL."""
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
        raise _grant_error("The client assertion's jti must be 1 to 255 characters.")
    if "\x00" in jti:  # PostgreSQL cannot store it (JSON lets a claim carry one)
        raise _grant_error("The client assertion's jti must not contain NUL characters.")
    return jti


async def token(
    db: Database, *, form: dict[str, str], issuer: TokenIssuer, remote: RemoteKeySets
) -> TokenResponse:
    """The token endpoint's use case: the key set of a client registered by jwks_uri is
    fetched (or taken from the cache) first, outside any transaction; then the grant."""
    fetched = await _remote_keys(db, form, remote)
    return await db.write(partial(exchange, form=form, issuer=issuer, fetched=fetched))


async def _remote_keys(
    db: Database, form: dict[str, str], remote: RemoteKeySets
) -> FetchedKeys | None:
    """The key set for the assertion's client and kid, if that client has a jwks_uri (an
    assertion that does not even name them is left for ``exchange`` to refuse)."""
    assertion = form.get("client_assertion", "")
    if form.get("grant_type") != "client_credentials" or not assertion:
        return None
    import jwt

    try:
        _check_claims(assertion)
        kid = jwt.get_unverified_header(assertion).get("kid")
        client_id = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
    except (OAuthError, jwt.PyJWTError, ValueError, TypeError, AttributeError):
        return None
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
        return None
    if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
        return None
    row = await db.read_small(partial(repository.active_client, client_id=client_id))
    if row is None or row.jwks_uri is None:
        return None
    try:
        keys = await remote.keys_for(row.id, row.jwks_uri, kid)
    except KeySetUnavailable as exc:
        log.warning("jwks_uri of client %s unavailable: %s", row.id, exc)
        return FetchedKeys(row.jwks_uri, None)
    return FetchedKeys(row.jwks_uri, keys)


def exchange(
    conn: Connection,
    *,
    form: dict[str, str],
    issuer: TokenIssuer,
    fetched: FetchedKeys | None = None,
) -> TokenResponse:
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
    client, jti, expires = _authenticate_client(conn, assertion, issuer, fetched)

    requested, refused = scopes.parse_scopes(form.get("scope", ""))
    if refused:
        raise OAuthError("invalid_scope", "Only SMART system/ scopes can be granted.")
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
