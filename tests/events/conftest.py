from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text

from kap_outcomes.db import Database

from .receiver import Receiver
from .workers import WorkerThread, worker_settings


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def start_worker(database_url: str, db: Database) -> Iterator[Callable[..., WorkerThread]]:
    started: list[WorkerThread] = []

    def start(**overrides: Any) -> WorkerThread:
        # the network rule: a test's worker only ever calls loopback receivers
        db.run_write(
            lambda conn: conn.execute(
                text(
                    "UPDATE webhook_endpoints SET enabled = false WHERE url NOT LIKE"
                    " 'http://127.0.0.1:%' AND url NOT LIKE 'http://localhost:%'"
                )
            )
        )
        worker = WorkerThread(worker_settings(database_url, **overrides))
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
    # what a test left pending is never sent by a later test's worker
    db.run_write(lambda conn: conn.execute(text("UPDATE webhook_endpoints SET enabled = false")))
