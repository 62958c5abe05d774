"""A delivery worker in a thread of the test process, with settings of the test's choosing."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from kap_outcomes.config import Settings
from kap_outcomes.db import Database, make_engine
from kap_outcomes.worker import Worker

from ..conftest import TEST_SIGNING_KEY

FAST = {
    "webhook_retry_schedule_s": [0.2, 0.2],
    "webhook_timeout_s": 1.0,
    "webhook_lease_s": 5.0,
    "worker_poll_interval_s": 0.1,
}


def worker_settings(database_url: str, **overrides: Any) -> Settings:
    return Settings(
        database_url=database_url,
        environment="test",
        signing_key=TEST_SIGNING_KEY,
        **(FAST | overrides),
    )


class WorkerThread:
    def __init__(self, settings: Settings) -> None:
        self.db = Database(make_engine(settings.database_url))
        self.worker = Worker(self.db, settings)
        self.loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)

            async def main() -> None:
                self._stop = asyncio.Event()
                started.set()
                await self.worker.run(self._stop)

            self.loop.run_until_complete(main())

        self.thread = threading.Thread(target=run, name="test-worker", daemon=True)
        self.thread.start()
        started.wait(10)

    def stop(self) -> None:
        if self.loop.is_closed():  # stopped already
            return
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(15)
        self.db.dispose()  # before the loop closes: the committer settles on the loop
        self.loop.close()
