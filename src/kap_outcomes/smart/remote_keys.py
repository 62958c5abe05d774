"""Key sets at a client's ``jwks_uri``: fetched through the egress rules, cached, refreshed.

- **Egress**: the same rules as webhook deliveries (``webhooks.egress``): http or https only,
  no credentials in the URL, the address actually connected to must be globally routable
  unless it lies in ``KAP_JWKS_ALLOWED_NETWORKS`` (a list of its own: admitting webhooks to a
  private network does not admit key fetches there), no redirects, ``KAP_JWKS_TIMEOUT_S`` in
  all, at most :data:`MAX_JWKS_BYTES` read.
- **Cache**: per client, in this process, for the answer's ``Cache-Control: max-age``
  (:data:`DEFAULT_MAX_AGE_S` without one; ``no-store`` and ``no-cache`` count as 0), kept
  within ``KAP_JWKS_CACHE_MIN_S`` … ``KAP_JWKS_CACHE_MAX_S``.
- **Refresh on an unknown kid**: a fresh set that lacks the assertion's ``kid`` is fetched
  again, but never more than once per ``KAP_JWKS_REFRESH_INTERVAL_S`` per client, failed
  fetches included: assertions naming made-up kids cannot make us fetch on every request.
  Concurrent requests of one client share one fetch.
- A set that cannot be fetched or read is not replaced by a stale copy: the client's
  assertions are refused (``invalid_client``) until a fetch succeeds.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from kap_outcomes import json_bodies
from kap_outcomes.config import Settings
from kap_outcomes.smart.jwks import usable_keys
from kap_outcomes.webhooks import egress

MAX_JWKS_BYTES = 64 * 1024
DEFAULT_MAX_AGE_S = 300.0
MAX_CACHED_CLIENTS = 10_000
_ACCEPT = "application/jwk-set+json, application/json"
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|=|$)", re.IGNORECASE)


class KeySetUnavailable(Exception):
    """The key set could not be fetched or holds no usable key; the message says why
    (never the set's content)."""


def max_age(cache_control: str | None) -> float | None:
    """The seconds an answer may be cached by its ``Cache-Control`` (RFC 9111 §5.2.2.1),
    0 for ``no-store`` / ``no-cache``, None when it does not say."""
    if not cache_control:
        return None
    if _NO_CACHE.search(cache_control):
        return 0.0
    match = _MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else None


def read_key_set(body: bytes) -> dict[str, Any]:
    """The usable public keys of a fetched JWK Set (``{"keys": [...]}``); unusable ones
    (other algorithms, encryption keys, weak or private keys) are left out."""
    if json_bodies.check(body):
        raise KeySetUnavailable("the answer is not a well-formed JSON object")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise KeySetUnavailable("the answer is not JSON") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise KeySetUnavailable('the answer is not a JWK Set (no "keys" list)')
    usable = usable_keys(keys)
    if not usable:
        raise KeySetUnavailable("the key set holds no usable RS384 or ES384 public key")
    return {"keys": usable}


@dataclass(slots=True)
class _Entry:
    uri: str
    keys: dict[str, Any] | None
    fresh_until: float
    fetched_at: float  # when the last fetch (successful or not) started
    failure: str | None = None


@dataclass(frozen=True, slots=True)
class FetchRules:
    policy: egress.EgressPolicy
    timeout_s: float
    cache_min_s: float
    cache_max_s: float
    refresh_interval_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchRules:
        return cls(
            policy=egress.EgressPolicy(tuple(settings.jwks_allowed_networks)),
            timeout_s=settings.jwks_timeout_s,
            cache_min_s=settings.jwks_cache_min_s,
            cache_max_s=max(settings.jwks_cache_max_s, settings.jwks_cache_min_s),
            refresh_interval_s=settings.jwks_refresh_interval_s,
        )

    def lifetime(self, cache_control: str | None) -> float:
        said = max_age(cache_control)
        wanted = DEFAULT_MAX_AGE_S if said is None else said
        return min(max(wanted, self.cache_min_s), self.cache_max_s)


class RemoteKeySets:
    """The key sets of the clients registered by ``jwks_uri``, as this process knows them."""

    def __init__(self, rules: FetchRules, clock: Callable[[], float] = time.monotonic) -> None:
        self.rules = rules
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[None]] = {}

    async def fetch(self, uri: str) -> tuple[dict[str, Any], float]:
        """Fetch and read the set at ``uri`` now: (usable keys, seconds to keep them)."""
        try:
            async with egress.new_client() as client:
                fetched = await egress.get(
                    client,
                    url=uri,
                    policy=self.rules.policy,
                    timeout_s=self.rules.timeout_s,
                    max_bytes=MAX_JWKS_BYTES,
                    accept=_ACCEPT,
                )
        except egress.Refused as exc:
            raise KeySetUnavailable(f"refused: {exc}") from None
        except egress.Unreachable as exc:
            raise KeySetUnavailable(str(exc)) from None
        return read_key_set(fetched.body), self.rules.lifetime(fetched.cache_control)

    async def keys_for(self, client_id: str, uri: str, kid: str) -> dict[str, Any]:
        """The key set to verify an assertion of ``client_id`` naming ``kid``.

        From the cache while it is fresh and knows ``kid``; else fetched again, unless the
        last fetch for the client is younger than the refresh interval (then the cached set
        is answered as it is, and the kid stays unknown).
        """
        entry = self._entries.get(client_id)
        if entry is not None and entry.uri != uri:  # the registration moved to another URL
            entry = None
        now = self._clock()
        if entry is not None and not self._wants_fetch(entry, kid, now):
            return self._answer(entry)
        task = self._inflight.get(client_id)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.ensure_future(self._refresh(client_id, uri))
            self._inflight[client_id] = task
            task.add_done_callback(lambda _t: self._forget(client_id, _t))
        await asyncio.shield(task)
        return self._answer(self._entries[client_id])

    def forget(self, client_id: str) -> None:
        """Drop a client's cached set (its registration changed)."""
        self._entries.pop(client_id, None)

    def _wants_fetch(self, entry: _Entry, kid: str, now: float) -> bool:
        if now - entry.fetched_at < self.rules.refresh_interval_s:
            return False  # rate limit: whatever the kid, no fetch yet
        if now >= entry.fresh_until:
            return True
        return entry.keys is None or not any(k.get("kid") == kid for k in entry.keys["keys"])

    def _answer(self, entry: _Entry) -> dict[str, Any]:
        if entry.keys is None:
            raise KeySetUnavailable(entry.failure or "not fetched")
        return entry.keys

    def _forget(self, client_id: str, task: asyncio.Task[None]) -> None:
        if self._inflight.get(client_id) is task:
            del self._inflight[client_id]

    async def _refresh(self, client_id: str, uri: str) -> None:
        started = self._clock()
        try:
            keys, lifetime = await self.fetch(uri)
        except KeySetUnavailable as exc:
            entry = _Entry(uri, None, started, started, str(exc))
        else:
            entry = _Entry(uri, keys, started + lifetime, started)
        self._entries[client_id] = entry
        self._entries.move_to_end(client_id)
        while len(self._entries) > MAX_CACHED_CLIENTS:
            self._entries.popitem(last=False)
