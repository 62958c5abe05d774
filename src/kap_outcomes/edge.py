"""What every request passes through first: its id, its log line, security headers, and the
throttling of failed authentication per client address. (The per-token rate limit, which needs
the authenticated principal, is applied in ``auth.dependencies.current_principal`` with the
:class:`RateWindow` defined here.)

The throttle counts and refuses failed attempts only: an address over its budget gets 429
instead of 401 (or instead of the 400 of a wrong enrollment code), while a request whose
credential is valid is served as usual, and a request that needs none (``/healthz``,
``/readyz``) is never touched. So a neighbour behind the same NAT who mistypes a token cannot
lock a clinic out. Guessing gains nothing from this: tokens carry 256 random bits, enrollment
codes 80 bits for 15 minutes, client assertions are signatures.

Pure ASGI and in-process: it adds a few microseconds to every request. The limits are per
process; behind several instances they hold per instance (put a shared limiter at the load
balancer when that matters).
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import math
import os
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kap_outcomes.errors import DomainError
from kap_outcomes.fhir.outcome import FHIR_MEDIA_TYPE, is_fhir_path, outcome_for

log = logging.getLogger("kap_outcomes.access")

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._\-]{1,64}$")
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]
_DOCS = ("/docs", "/redoc")  # the interactive docs load scripts: no CSP there
_ENROLL = "/v1/auth/enroll"  # a wrong enrollment code is a failed authentication too


class Window(Protocol):
    """What the edge needs of a limiter (in-process :class:`RateWindow` now; a shared store
    can stand in for it)."""

    def retry_after(self, key: bytes, now: float) -> int: ...

    def blocked_for(self, key: bytes, now: float) -> int: ...

    def add(self, key: bytes, now: float) -> None: ...


CORS_ALLOWED_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-Match",
    "If-None-Exist",
    "Prefer",
    "X-Request-ID",
    "Last-Event-ID",
]
"""What a browser page may send: the headers this API reads (FHIR's included)."""
CORS_EXPOSED_HEADERS = ["Location", "ETag", "Retry-After", "X-Request-ID", "Idempotent-Replayed"]
"""What a browser page may read besides the CORS-safelisted response headers."""


def cors_options(origins: list[str]) -> dict[str, Any]:
    """Starlette ``CORSMiddleware`` options: only the listed origins (never ``*``), bearer
    tokens in ``Authorization`` rather than cookies (so no credentials mode)."""
    return {
        "allow_origins": origins,
        "allow_methods": ["GET", "POST", "PUT", "PATCH", "DELETE"],
        "allow_headers": CORS_ALLOWED_HEADERS,
        "expose_headers": CORS_EXPOSED_HEADERS,
        "max_age": 600,
    }


class RateWindow:
    """A fixed-window counter per key, bounded in memory (oldest keys dropped first)."""

    def __init__(self, limit: int, seconds: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.seconds = seconds
        self.max_keys = max_keys
        self._counts: OrderedDict[bytes, tuple[float, int]] = OrderedDict()

    def retry_after(self, key: bytes, now: float) -> int:
        """0 if ``key`` is under the limit (and count it), else seconds until it is again."""
        start, count = self._counts.get(key, (now, 0))
        if now - start >= self.seconds:
            start, count = now, 0
        if count >= self.limit:
            return max(1, math.ceil(start + self.seconds - now))
        self._counts[key] = (start, count + 1)
        self._counts.move_to_end(key)
        if len(self._counts) > self.max_keys:
            self._counts.popitem(last=False)
        return 0

    def blocked_for(self, key: bytes, now: float) -> int:
        start, count = self._counts.get(key, (now, 0))
        if now - start >= self.seconds or count < self.limit:
            return 0
        return max(1, math.ceil(start + self.seconds - now))

    def add(self, key: bytes, now: float) -> None:
        self.retry_after(key, now)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Limits:
    failed_auth_per_minute: int  # per client address; 0: no throttling
    trusted_proxies: tuple[Network, ...] = ()  # peers whose X-Forwarded-For is believed


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP address as a peer or an X-Forwarded-For entry gives it (a port and IPv6
    brackets allowed), or None."""
    text = text.strip()
    if text.startswith("["):  # [2001:db8::1] or [2001:db8::1]:443
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # 198.51.100.7:443
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: tuple[Network, ...]
) -> bool:
    return any(address in network for network in proxies)


def client_key(scope: Scope, proxies: tuple[Network, ...] = ()) -> bytes:
    """The key of the client's failures: its address, as the peer or, when the peer is a
    trusted proxy, as ``X-Forwarded-For`` says.

    The header is read right to left, each proxy having appended the address it saw; the
    first address that is not a trusted proxy is the client (entries left of it are the
    client's own and may be forged). An entry that is not an address ends the walk at the
    last trusted hop. An IPv6 client is keyed by its /64, the block one subscriber usually
    holds, so that rotating addresses within it does not reset the count.
    """
    peer = (scope.get("client") or ("-", 0))[0]
    address = _address(peer)
    if address is None:
        return str(peer).encode()
    if proxies and _trusted(address, proxies):
        hops = [
            hop
            for name, value in scope["headers"]
            if name == b"x-forwarded-for"
            for hop in value.decode("latin-1").split(",")
        ]
        for hop in reversed(hops):
            forwarded = _address(hop)
            if forwarded is None:
                break
            address = forwarded
            if not _trusted(address, proxies):
                break
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False)).encode()
    return str(address).encode()


def too_many_requests(retry_after: int, detail: str) -> DomainError:
    return DomainError(
        detail=detail,
        status=429,
        slug="too-many-requests",
        title="Too many requests",
        headers={"Retry-After": str(retry_after)},
    )


class AccessLog:
    """One JSON line per request on the ``kap_outcomes.access`` logger, written in batches.

    A ``logging`` call costs several microseconds (a record, a lock, a flush), as much as a
    fifth of the ingest path's own work; so the lines of the requests answered within
    :data:`FLUSH_SECONDS` go out as one record (still one line per request in the output).
    The price: lines of the last few milliseconds before a crash can be lost.
    """

    FLUSH_SECONDS = 0.05

    def __init__(self) -> None:
        self._lines: list[str] = []

    def add(self, line: str) -> None:
        self._lines.append(line)
        if len(self._lines) == 1:
            try:
                asyncio.get_running_loop().call_later(self.FLUSH_SECONDS, self.flush)
            except RuntimeError:  # pragma: no cover - no loop: write at once
                self.flush()

    def flush(self) -> None:
        lines, self._lines = self._lines, []
        if lines:
            log.info("\n".join(lines))


class Edge:
    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self._access = AccessLog()
        # request ids: unique per process and cheap (no syscall per request)
        self._id_prefix = os.urandom(4).hex().encode()
        self._id_counter = itertools.count()
        self._failures: Window | None = (
            RateWindow(limits.failed_auth_per_minute, 60.0)
            if limits.failed_auth_per_minute
            else None
        )
        self._proxies = limits.trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _REQUEST_ID.match(value):
                request_id = value
        if not request_id:
            request_id = b"%s%08x" % (self._id_prefix, next(self._id_counter) & 0xFFFFFFFF)
        scope.setdefault("state", {})["request_id"] = request_id.decode()
        status = 500
        headers_out = [(b"x-request-id", request_id), *_SECURITY_HEADERS]
        if scope["path"].startswith(_DOCS):
            headers_out = headers_out[:-1]
        refused = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, refused
            if message["type"] == "http.response.start":
                status = message["status"]
                failures = self._failures
                if failures is not None and _failed_authentication(status, scope["path"]):
                    refusal = self._count_failure(failures, scope)
                    if refusal is not None:  # the app's answer is dropped for the 429
                        refused, status = True, refusal.status
                        await _send_problem(send, refusal, scope["path"], headers_out)
                        return
                own = message.get("headers", ())
                named = {name.lower() for name, _ in own}
                # a response that sets one of these itself (the dashboard's pages: their
                # Content-Security-Policy, a same-origin Referrer-Policy) keeps its own
                extra = [h for h in headers_out if h[0] not in named] if named else headers_out
                message["headers"] = [*own, *extra]
            elif refused:
                return
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            if log.isEnabledFor(logging.INFO):
                route = scope.get("route")
                self._access.add(
                    orjson.dumps(
                        {
                            "request_id": request_id.decode(),
                            "method": scope["method"],
                            "route": getattr(route, "path", None) or "-",
                            "status": status,
                            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        }
                    ).decode()
                )

    def _count_failure(self, failures: Window, scope: Scope) -> DomainError | None:
        """Count a failed authentication of the client; the 429 that replaces it once the
        client is over its budget."""
        key, now = client_key(scope, self._proxies), time.monotonic()
        wait = failures.blocked_for(key, now)
        if wait:
            return too_many_requests(wait, "Too many failed authentications from this address.")
        failures.add(key, now)
        return None


def _failed_authentication(status: int, path: str) -> bool:
    return status == 401 or (status == 400 and path == _ENROLL)


async def _send_problem(
    send: Send, problem: DomainError, path: str, extra_headers: list[tuple[bytes, bytes]]
) -> None:
    media_type = b"application/problem+json"
    if is_fhir_path(path):  # FHIR routes answer every error with an OperationOutcome
        body = orjson.dumps(outcome_for(problem.status, problem.detail))
        media_type = FHIR_MEDIA_TYPE.encode()
    else:
        body = orjson.dumps(problem.body(path))
    headers = [
        (b"content-type", media_type),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in problem.headers.items()),
        *extra_headers,
    ]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
