"""The request budgets: requests per token, failed authentications per client address.

Each is a fixed window of one minute per key. Without ``KAP_REDIS_URL`` the counts live in
this process (:class:`LocalBudget` on a :class:`RateWindow`: O(1) per request, with a hard
cap on the keys it holds). With it they live in Redis (:class:`SharedBudget`, the ``limits``
library's fixed window on its asyncio Redis storage: one scripted INCR with its expiry per
request), so every instance draws on one budget.

While Redis does not answer (refused, timed out, any Redis error), the two budgets behave
differently, on purpose:

- the request rate **fails open to this process**: the instance counts on its own, as it
  would without Redis, so a client gets at most the limit per instance until Redis is back;
- the failed-authentication throttle **fails closed**: every failed authentication is
  answered 429 (``Retry-After``) because it cannot be counted. Nobody with a valid
  credential is affected (only failures are throttled), and an outage of the store, which an
  attacker might provoke, never lifts the throttle.

Either way a warning is logged once per outage (never the address or the token) and
``kap_shared_limit_unavailable_total`` counts each decision taken without Redis. After a
failure Redis is left alone for :data:`RETRY_AFTER_S` seconds, so an outage costs one
connection attempt per interval rather than one per request.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Protocol

from kap_outcomes.metrics import SHARED_LIMIT_UNAVAILABLE

if TYPE_CHECKING:  # imported with KAP_REDIS_URL only, by SharedStore and SharedBudget
    from limits import RateLimitItemPerMinute
    from limits.aio.storage import RedisStorage
    from limits.aio.strategies import FixedWindowRateLimiter

log = logging.getLogger("kap_outcomes.limits")

RETRY_AFTER_S = 5.0
"""How long the budgets leave Redis alone after it failed to answer."""
REDIS_TIMEOUT_S = 0.25
"""Connect and read timeout of one Redis call: a request waits at most this for its count."""
CLOSED_RETRY_AFTER_S = 5
"""The ``Retry-After`` of a failed authentication refused while Redis is unreachable."""


class Budget(Protocol):
    """A number of events per minute per key."""

    async def take(self, key: str) -> int:
        """Count one event of ``key``: 0 while within the budget, else the seconds until the
        key has a budget again (its ``Retry-After``)."""
        ...


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


class LocalBudget:
    """This process's count (the default, and the fallback of the request rate)."""

    def __init__(self, per_minute: int) -> None:
        self._window = RateWindow(per_minute, 60.0)

    async def take(self, key: str) -> int:
        return self._window.retry_after(key.encode(), time.monotonic())


class SharedStore:
    """The Redis connection the budgets share, and whether it is answering."""

    def __init__(self, url: str, key_prefix: str) -> None:
        from limits.aio.storage import RedisStorage
        from limits.aio.strategies import FixedWindowRateLimiter

        self.storage: RedisStorage = RedisStorage(
            f"async+{url}",
            implementation="redispy",
            key_prefix=key_prefix,
            wrap_exceptions=True,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            socket_timeout=REDIS_TIMEOUT_S,
        )
        self.strategy: FixedWindowRateLimiter = FixedWindowRateLimiter(self.storage)
        self._down_until = 0.0
        self.outage = False

    @property
    def answering(self) -> bool:
        return time.monotonic() >= self._down_until

    def failed(self, exc: BaseException) -> None:
        if not self.outage:  # once per outage, not per request or per retry
            self.outage = True
            log.warning(
                "shared limits: Redis did not answer (%s); deciding without it, trying again "
                "every %.0f s",
                type(exc).__name__,
                RETRY_AFTER_S,
            )
        self._down_until = time.monotonic() + RETRY_AFTER_S

    def answered(self) -> None:
        self.outage = False
        log.warning("shared limits: Redis answers again")

    async def close(self) -> None:
        bridge: Any = self.storage.bridge  # the redis.asyncio client it made
        await bridge.storage.aclose()


class SharedBudget:
    """A budget that every instance pointing at the same Redis (and prefix) draws on."""

    def __init__(
        self,
        store: SharedStore,
        per_minute: int,
        *,
        name: str,
        fallback: LocalBudget | None,
    ) -> None:
        from limits import RateLimitItemPerMinute

        self._store = store
        self._item: RateLimitItemPerMinute = RateLimitItemPerMinute(per_minute, namespace=name)
        self._fallback = fallback  # None: refuse while Redis is unreachable
        self._unavailable = SHARED_LIMIT_UNAVAILABLE.labels(limit=name)

    async def take(self, key: str) -> int:
        store = self._store
        if store.answering:
            try:
                allowed = await store.strategy.hit(self._item, key)
                if not allowed:
                    stats = await store.strategy.get_window_stats(self._item, key)
            except Exception as exc:  # limits.errors.StorageError, a timeout, a closed socket
                store.failed(exc)
            else:
                if store.outage:
                    store.answered()
                return 0 if allowed else max(1, math.ceil(stats.reset_time - time.time()))
        self._unavailable.inc()
        if self._fallback is None:
            return CLOSED_RETRY_AFTER_S
        return await self._fallback.take(key)


def budgets(
    *, redis_url: str | None, key_prefix: str, rate_per_minute: int, failed_auth_per_minute: int
) -> tuple[SharedStore | None, Budget | None, Budget | None]:
    """The shared store (None without Redis), the request-rate budget and the failed-
    authentication budget (None where the setting is 0: off)."""
    store = SharedStore(redis_url, key_prefix) if redis_url else None
    rate: Budget | None = None
    failures: Budget | None = None
    if rate_per_minute:
        local = LocalBudget(rate_per_minute)
        rate = (
            local
            if store is None
            else SharedBudget(store, rate_per_minute, name="rate", fallback=local)
        )
    if failed_auth_per_minute:
        failures = (
            LocalBudget(failed_auth_per_minute)
            if store is None
            else SharedBudget(store, failed_auth_per_minute, name="failed_auth", fallback=None)
        )
    return store, rate, failures
