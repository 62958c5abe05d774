"""The process's metrics (Prometheus, ``prometheus-client``), served at ``GET /metrics``.

Counted where it happens and cheaply (a counter or histogram child resolved once, then an
increment under its lock); what the database knows (the event backlog, deliveries waiting or
given up, the connection pool) is read when ``/metrics`` is scraped, by
:mod:`kap_outcomes.metrics.router`. Labels are route templates, methods, statuses,
instruments and alert levels: never an id, a path as sent, or anything about a patient.

Every process counts for itself: scrape each instance (each ``serve`` process) on its own and
let Prometheus add them up. With ``serve --workers N`` (several processes behind one port),
set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory of the instance's own and each scrape
adds up the processes' files (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUEST_SECONDS = Histogram(
    "kap_http_request_duration_seconds",
    "Time to answer a request, by method, route template and status (its _count: requests).",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
ASSESSMENTS = Counter(
    "kap_assessments_submitted",
    "Assessments stored (committed) by this process, by instrument.",
    ["instrument"],
)
ALERTS_OPENED = Counter(
    "kap_alerts_opened",
    "Safety alerts opened (committed) by this process, by level.",
    ["level"],
)
WEBHOOK_ATTEMPTS = Counter(
    "kap_webhook_attempts",
    "Webhook delivery attempts made by this process's worker, by outcome.",
    ["outcome"],
)
GROUP_COMMIT_BATCH = Histogram(
    "kap_db_group_commit_batch_size",
    "Units of work committed together by one SQLite group commit.",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
SHARED_LIMIT_UNAVAILABLE = Counter(
    "kap_shared_limit_unavailable",
    "Limit decisions taken without Redis (KAP_REDIS_URL set but not answering), by limit.",
    ["limit"],
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestSeries:
    """The histogram child of each (method, route, status), resolved once per series."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], Histogram] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """``route`` is the matched route's template (or ``unmatched``), never the path."""
        key = (method if method in _METHODS else "other", route, status)
        child = self._children.get(key)
        if child is None:  # bounded: known methods x routes x statuses
            child = self._children[key] = REQUEST_SECONDS.labels(key[0], route, str(status))
        child.observe(seconds)
