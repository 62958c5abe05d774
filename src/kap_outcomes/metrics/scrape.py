"""What a scrape of ``/metrics`` reads: the process's own metrics, plus what the database
knows at that moment (the event backlog, deliveries due, retrying and given up, the
connection pool)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import Connection
from sqlalchemy.pool import QueuePool

from kap_outcomes.db import Database, utcnow
from kap_outcomes.events import repository as events_repository
from kap_outcomes.webhooks import repository as webhooks_repository
from kap_outcomes.webhooks.delivery import FAN_OUT

BACKLOG_CAP = 100_000
"""Backlogs are counted up to this (a scrape stays cheap however far behind a worker is)."""


def _backlog(conn: Connection) -> tuple[int, dict[str, int]]:
    events = events_repository.backlog(conn, name=FAN_OUT, cap=BACKLOG_CAP)
    deliveries = webhooks_repository.delivery_backlog(conn, now=utcnow(), cap=BACKLOG_CAP)
    return events, deliveries


class DatabaseCollector:
    """Gauges read from the database and its pool at each scrape."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        pool = self.db.engine.pool
        if isinstance(pool, QueuePool):
            connections = GaugeMetricFamily(
                "kap_db_pool_connections",
                "Connections of this process's pool, in use or idle.",
                labels=["state"],
            )
            connections.add_metric(["in_use"], pool.checkedout())
            connections.add_metric(["idle"], pool.checkedin())
            yield connections
            yield GaugeMetricFamily(
                "kap_db_pool_size",
                "Connections the pool keeps (KAP_DB_POOL_SIZE); as many again may overflow.",
                value=pool.size(),
            )
        up = GaugeMetricFamily(
            "kap_metrics_database_up", "Whether this scrape could read the database's gauges."
        )
        try:
            events, deliveries = self.db.run_read(_backlog)
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            "kap_event_backlog",
            "Events the webhook fan-out has not yet read (all organisations).",
            value=events,
        )
        waiting = GaugeMetricFamily(
            "kap_webhook_deliveries",
            "Webhook deliveries due now, waiting to retry after a failed attempt, or given up.",
            labels=["state"],
        )
        for state, count in deliveries.items():
            waiting.add_metric([state], count)
        yield waiting


class _Process:
    """This process's metrics, or every process's with prometheus-client's multiprocess
    mode (``PROMETHEUS_MULTIPROC_DIR`` set before start)."""

    def __init__(self) -> None:
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self._source: Any = REGISTRY
        if directory:
            self._source = CollectorRegistry()
            MultiProcessCollector(self._source, path=directory)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterator[Metric]:
        yield from self._source.collect()


def registry(db: Database) -> CollectorRegistry:
    """What ``/metrics`` shows for an app on ``db``."""
    shown = CollectorRegistry(auto_describe=False)
    shown.register(_Process())
    shown.register(DatabaseCollector(db))
    return shown


def exposition(shown: CollectorRegistry) -> bytes:
    """The Prometheus text format (reads the database: call it off the event loop)."""
    return generate_latest(shown)
