"""Absurd numeric claims in a SMART client assertion: an OAuth error, never a 500.

RFC 7519 section 2: ``exp``, ``iat`` and ``nbf`` are NumericDates (seconds since 1970). The
assertions below are signed with the client's registered key, so the claims are all that is
wrong with them; the payloads are written as raw JSON so that numbers a JSON library would
never produce (``1e20``, 4,000 digits, a repeated claim) reach the server as a client wrote them.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from jwt.api_jws import PyJWS

from ..conftest import Tenant
from .test_smart import Backend, assert_oauth_error


def _signed(backend: Backend, claims: bytes) -> str:
    """A compact JWS of the raw payload ``{iss, sub, aud, jti, <claims>}``."""
    head = (
        f'{{"iss": "{backend.client_id}", "sub": "{backend.client_id}", '
        f'"aud": "{backend.token_url}", "jti": "{uuid.uuid4()}", '
    ).encode()
    return PyJWS().encode(
        head + claims + b"}",
        backend.key,
        algorithm=backend.algorithm,
        headers={"kid": backend.kid, "typ": "JWT"},
    )


def _soon() -> bytes:
    return str(int(time.time()) + 240).encode()


@pytest.mark.parametrize(
    "claims",
    [
        lambda: b'"exp": 1e20',
        lambda: b'"exp": 1e200000',
        lambda: b'"exp": -1E+400',
        lambda: b'"exp": ' + b"9" * 4000,
        lambda: b'"exp": Infinity',
        lambda: b'"exp": NaN',
        lambda: b'"exp": "1e20"',
        lambda: b'"exp": true',
        lambda: b'"exp": 1e19',
        lambda: b'"exp": -1e20',
        lambda: b'"exp": ' + _soon() + b', "iat": 1e20',
        lambda: b'"exp": ' + _soon() + b', "iat": -1e20',
        lambda: b'"exp": ' + _soon() + b', "iat": ' + b"1" * 4000,
        lambda: b'"exp": ' + _soon() + b', "nbf": 1e20',
        lambda: b'"exp": ' + _soon() + b', "nbf": -1e20',
        lambda: b'"exp": ' + _soon() + b', "nbf": "soon"',
        lambda: b'"exp": 1e20, "exp": ' + _soon(),
        lambda: b'"exp": ' + _soon() + b', "exp": 1e20',
    ],
    ids=[
        "exp-1e20",
        "exp-1e200000",
        "exp-minus-1e400",
        "exp-4000-digits",
        "exp-infinity",
        "exp-nan",
        "exp-string",
        "exp-boolean",
        "exp-1e19",
        "exp-minus-1e20",
        "iat-1e20",
        "iat-minus-1e20",
        "iat-4000-digits",
        "nbf-1e20",
        "nbf-minus-1e20",
        "nbf-string",
        "exp-twice-absurd-first",
        "exp-twice-absurd-last",
    ],
)
def test_absurd_numeric_claims_are_an_oauth_error(tenant: Tenant, claims: Any) -> None:
    backend = Backend(tenant)
    resp = backend.request_token(_signed(backend, claims()))
    assert_oauth_error(resp, 400, "invalid_grant")
    description = resp.json()["error_description"]
    assert any(name in description for name in ("exp", "iat", "nbf")), description
    assert "1e" not in description and "999" not in description  # the value is not echoed


def test_ordinary_numeric_dates_still_get_a_token(tenant: Tenant) -> None:
    backend = Backend(tenant)
    now = int(time.time())
    for claims in (
        b'"exp": ' + _soon(),
        b'"exp": ' + str(now + 240.5).encode() + b', "iat": ' + str(now).encode(),
        b'"exp": ' + _soon() + b', "iat": ' + str(now).encode() + b', "nbf": 0',
    ):
        resp = backend.request_token(_signed(backend, claims))
        assert resp.status_code == 200, resp.text
