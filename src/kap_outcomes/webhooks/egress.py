"""Safe outbound calls: where a webhook may point and how a delivery connects.

Only ``http`` and ``https``, no credentials in the URL. By default no address that is not
globally routable: loopback, private (RFC 1918, unique-local), link-local (where cloud
metadata services answer, 169.254.169.254), shared (100.64.0.0/10), multicast, reserved,
unspecified. ``KAP_WEBHOOK_ALLOWED_NETWORKS`` admits exceptions.

The check is made on the address actually connected to, at delivery time: the host is
resolved here, every address it resolves to must pass, and the connection goes to the checked
address (the URL's host travels as ``Host`` and TLS SNI, so certificates still verify against
the name). A name that resolved to a public address when registered and to 127.0.0.1 now
(DNS rebinding) is refused now.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from kap_outcomes import __version__

if TYPE_CHECKING:  # imported where a delivery or a fetch is made: not on every start-up
    import aiohttp
    import httpx

IPAddress = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

MAX_RESPONSE_BYTES = 64 * 1024
"""What is read of a receiver's answer before the connection is closed (nothing is kept)."""


class Refused(Exception):
    """The URL or the address it leads to is not one deliveries may reach."""


def _kind(ip: IPAddress) -> str:
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (cloud metadata)"
    if ip.is_private:
        return "private"
    if ip.is_multicast:
        return "multicast"
    return "non-public"


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    allowed: Sequence[Network] = ()

    def check(self, ip: IPAddress) -> None:
        if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.allowed):
            return
        if not ip.is_global or ip.is_multicast:
            raise Refused(f"{ip} is a {_kind(ip)} address")


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # with its query

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


@lru_cache(maxsize=1024)
def parse_url(url: str) -> Target:
    """The parts of a webhook URL, or ``Refused`` with the reason (a pure function of the
    URL, remembered: every delivery to an endpoint parses the same one)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused("not a valid URL") from exc
    if parts.scheme not in ("http", "https"):
        raise Refused("only http and https URLs are allowed")
    if not parts.hostname:
        raise Refused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise Refused("credentials in the URL are not allowed")
    if parts.fragment:
        raise Refused("a fragment has no meaning in a webhook URL")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or (443 if parts.scheme == "https" else 80),
        path=path,
    )


@lru_cache(maxsize=1024)
def literal_ip(host: str) -> IPAddress | None:
    try:
        return ip_address(host)
    except ValueError:
        return None


def check_registration(url: str, policy: EgressPolicy) -> Target:
    """At registration: the URL's form, and its address when it is written as one (a name is
    resolved only at delivery time, where it counts)."""
    target = parse_url(url)
    ip = literal_ip(target.host)
    if ip is not None:
        policy.check(ip)
    return target


async def resolve(target: Target, policy: EgressPolicy) -> IPAddress:
    """The address to connect to: every address of the host must pass the policy."""
    ip = literal_ip(target.host)
    if ip is not None:
        policy.check(ip)
        return ip
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            target.host, target.port, type=socket.SOCK_STREAM
        )
    except OSError as exc:
        raise Refused(f"{target.host} does not resolve") from exc
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        candidate = ip_address(sockaddr[0])
        if candidate not in addresses:
            addresses.append(candidate)
    if not addresses:
        raise Refused(f"{target.host} does not resolve")
    for candidate in addresses:
        try:
            policy.check(candidate)
        except Refused as exc:
            raise Refused(f"{target.host} resolves to {exc}") from None
    return addresses[0]


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def post(
    connections: Connections,
    *,
    url: str,
    body: bytes,
    headers: dict[str, str],
    policy: EgressPolicy,
    timeout_s: float,
) -> Answer:
    """POST ``body`` to ``url`` through the policy: never raises, says what happened.

    The request goes to the checked address written into the URL (aiohttp resolves nothing
    for an address literal); the name travels as ``Host`` and, over https, as the TLS server
    name the certificate is verified against. Redirects are not followed; at most
    ``MAX_RESPONSE_BYTES`` of the answer are read (an answer not read to its end closes its
    connection rather than going back to the pool).
    """
    import aiohttp

    started = time.monotonic()

    def answer(status: int | None, error: str | None) -> Answer:
        return Answer(status, error, int((time.monotonic() - started) * 1000))

    try:
        target = parse_url(url)
        ip = await resolve(target, policy)
    except Refused as exc:
        return answer(None, f"refused: {exc}")
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    session = connections.for_target(target)
    try:
        async with asyncio.timeout(timeout_s):
            async with session.post(
                f"{target.scheme}://{host}:{target.port}{target.path}",
                data=body,
                headers={
                    **headers,
                    "Host": target.host_header,
                    "Content-Type": "application/json",
                    "User-Agent": _USER_AGENT,
                },
                allow_redirects=False,
                timeout=_client_timeout(timeout_s),
                server_hostname=target.host if target.scheme == "https" else None,
            ) as response:
                status = response.status
                received = 0
                async for chunk in response.content.iter_any():
                    received += len(chunk)
                    if received >= MAX_RESPONSE_BYTES:
                        break
    except TimeoutError:  # aiohttp's own timeouts are TimeoutErrors too
        return answer(None, f"timed out after {timeout_s:g} s")
    except aiohttp.ClientError as exc:
        return answer(None, f"connection failed ({type(exc).__name__})")
    if 300 <= status < 400:
        return answer(status, f"HTTP {status}: redirects are not followed")
    if not 200 <= status < 300:
        return answer(status, f"HTTP {status}")
    return answer(status, None)


_USER_AGENT = f"kap-outcomes-webhooks/{__version__}"


@lru_cache(maxsize=16)
def _client_timeout(timeout_s: float) -> aiohttp.ClientTimeout:
    """aiohttp's own limit: the connection (a pool slot and the connect) within 5 s. The whole
    attempt, reading included, is bounded by the ``asyncio.timeout`` around it in ``post``
    (a second total timer of aiohttp's would measure the same thing again)."""
    import aiohttp

    return aiohttp.ClientTimeout(total=None, connect=min(timeout_s, 5.0))


def _timeouts(timeout_s: float) -> dict[str, float]:
    return {
        "connect": min(timeout_s, 5.0),
        "read": timeout_s,
        "write": timeout_s,
        "pool": timeout_s,
    }


def new_client() -> httpx.AsyncClient:
    """Proxies from the environment are ignored (they would bypass the address check)."""
    import httpx  # a fetch (a client's keys at its jwks_uri) is rare, and cached

    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        verify=_tls_context(),
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
    )


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    """httpx's own default (its CA bundle, certificates verified), built once per process:
    building it loads the bundle, ~60 ms of CPU on the event loop for every new client."""
    import httpx

    return httpx.create_ssl_context(trust_env=False)


class Unreachable(Exception):
    """A fetch that passed the policy but got no usable answer (the reason, no content)."""


@dataclass(frozen=True, slots=True)
class Fetched:
    body: bytes
    cache_control: str | None


async def get(
    client: httpx.AsyncClient,
    *,
    url: str,
    policy: EgressPolicy,
    timeout_s: float,
    max_bytes: int,
    accept: str,
) -> Fetched:
    """GET ``url`` through the policy (checked on the address connected to), without
    following redirects, within ``timeout_s`` in all, reading at most ``max_bytes``.

    ``Refused`` when the URL or its address may not be reached; ``Unreachable`` when the
    answer is not a 200 with a body within the cap.
    """
    import httpx  # loaded by new_client() already

    target = parse_url(url)
    ip = await resolve(target, policy)
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    request = client.build_request(
        "GET",
        f"{target.scheme}://{host}:{target.port}{target.path}",
        headers={
            "Host": target.host_header,
            "Accept": accept,
            "User-Agent": f"kap-outcomes/{__version__}",
        },
        extensions={"sni_hostname": target.host, "timeout": _timeouts(timeout_s)},
    )
    try:
        async with asyncio.timeout(timeout_s):
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                if response.status_code != 200:
                    raise Unreachable(f"HTTP {response.status_code}")
                chunks: list[bytes] = []
                received = 0
                async for chunk in response.aiter_bytes():
                    received += len(chunk)
                    if received > max_bytes:
                        raise Unreachable(f"the answer is larger than {max_bytes} bytes")
                    chunks.append(chunk)
            finally:
                await response.aclose()
    except (TimeoutError, httpx.TimeoutException):
        raise Unreachable(f"timed out after {timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise Unreachable(f"connection failed ({type(exc).__name__})") from None
    return Fetched(b"".join(chunks), response.headers.get("cache-control"))


class Connections:
    """The keep-alive connections of deliveries, each tied to what was checked.

    A request goes to the URL with the checked address in place of the name, and aiohttp's
    connector keeps connections by that URL's address and port: a connection is reused only
    to the address that passed the check. Over https the name also chose the certificate the
    connection was verified against (SNI), so https connections are pooled per host name as
    well: two names on one address never share a TLS connection. At most ``MAX_HOSTS`` https
    pools stay open (the least recently used is closed; an attempt still on it fails and is
    retried).

    Each pool is an aiohttp session (a delivery through it costs a fraction of the CPU httpx
    needs: see bench/README.md): environment proxies ignored (they would bypass the check),
    no cookies kept (a receiver cannot set what another delivery would send), bodies never
    decompressed (nothing of an answer is kept).
    """

    MAX_HOSTS = 64

    def __init__(self) -> None:
        self._pools: OrderedDict[str, aiohttp.ClientSession] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    def for_target(self, target: Target) -> aiohttp.ClientSession:
        key = target.host if target.scheme == "https" else ""
        pool = self._pools.pop(key, None) or _new_session()
        self._pools[key] = pool  # the most recently used last
        while len(self._pools) > self.MAX_HOSTS:
            _, oldest = self._pools.popitem(last=False)
            closing = asyncio.create_task(oldest.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        return pool

    async def __aenter__(self) -> Connections:
        return self

    async def __aexit__(self, *_: object) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        await asyncio.gather(*(p.close() for p in pools), *self._closing, return_exceptions=True)


def _new_session() -> aiohttp.ClientSession:
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64, use_dns_cache=False),
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=("Accept", "Accept-Encoding"),
    )
