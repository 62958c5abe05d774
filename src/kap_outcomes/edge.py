"""What every request passes through first: its id, its log line, security headers, and the
throttling of failed authentication per client address. (The per-token rate limit, which needs
the authenticated principal, is applied in ``auth.dependencies.current_principal``; both are
budgets of :mod:`kap_outcomes.limiter`, counted in this process or in Redis.)

The throttle counts and refuses failed attempts only: an address over its budget gets 429
instead of 401 (or instead of the 400 of a wrong enrollment code), while a request whose
credential is valid is served as usual, and a request that needs none (``/healthz``,
``/readyz``) is never touched. So a neighbour behind the same NAT who mistypes a token cannot
lock a clinic out. Guessing gains nothing from this: tokens carry 256 random bits, enrollment
codes 80 bits for 15 minutes, client assertions are signatures.

Pure ASGI: it adds a few microseconds to every request. The counts live in this process, or
in Redis when ``KAP_REDIS_URL`` is set, so that they hold across instances (see
:mod:`kap_outcomes.limiter`, also for what happens while Redis does not answer). Each request
is also observed in the ``kap_http_request_duration_seconds`` histogram, labelled with its
route's template (never the path as sent).
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kap_outcomes.errors import DomainError, too_many_requests
from kap_outcomes.limiter import Budget
from kap_outcomes.metrics import RequestSeries
from kap_outcomes.problems import CLIENT_CLOSED_REQUEST, send_problem

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


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Limits:
    failures: Budget | None  # failed authentications per client address; None: no throttle
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
        self._failures = limits.failures
        self._proxies = limits.trusted_proxies
        self._requests = RequestSeries()

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
        answered = gone = False

        async def receive_noting_disconnect() -> Message:
            nonlocal gone
            message = await receive()
            if message["type"] == "http.disconnect":
                gone = True
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal status, refused, answered
            if message["type"] == "http.response.start":
                answered = True
                status = message["status"]
                failures = self._failures
                if failures is not None and _failed_authentication(status, scope["path"]):
                    refusal = await self._count_failure(failures, scope)
                    if refusal is not None:  # the app's answer is dropped for the 429
                        refused, status = True, refusal.status
                        await send_problem(send, refusal, scope["path"], headers_out)
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
            await self.app(scope, receive_noting_disconnect, send_with_headers)
        finally:
            if gone and not answered:
                status = CLIENT_CLOSED_REQUEST  # one quiet line: nothing failed on our side
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None)
            self._requests.observe(scope["method"], route or "unmatched", status, elapsed)
            if log.isEnabledFor(logging.INFO):
                self._access.add(
                    orjson.dumps(
                        {
                            "request_id": request_id.decode(),
                            "method": scope["method"],
                            "route": route or "-",
                            "status": status,
                            "duration_ms": round(elapsed * 1000, 2),
                        }
                    ).decode()
                )

    async def _count_failure(self, failures: Budget, scope: Scope) -> DomainError | None:
        """Count a failed authentication of the client; the 429 that replaces it once the
        client is over its budget."""
        wait = await failures.take(client_key(scope, self._proxies).decode())
        if wait:
            return too_many_requests(wait, "Too many failed authentications from this address.")
        return None


def _failed_authentication(status: int, path: str) -> bool:
    return status == 401 or (status == 400 and path == _ENROLL)
