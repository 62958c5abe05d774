"""The background worker: the signal watch, webhook fan-out and deliveries, bulk exports, and
the caseload's refresh (:mod:`kap_outcomes.caseload.refresh`).

Embedded in ``kap-outcomes serve`` by default (one process on SQLite just works);
``kap-outcomes worker`` runs it alone, for deployments where several app instances share a
PostgreSQL database (set ``KAP_WORKER_EMBEDDED=false`` on the app instances, or keep it: any
number of workers may run, they share the work through the database).

It wakes when this process commits events (the bell), or every poll interval for events
written by other processes, or when a retry falls due.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta
from functools import partial

from kap_outcomes.bulk.runner import ExportRunner
from kap_outcomes.caseload.refresh import Refresh
from kap_outcomes.config import Settings
from kap_outcomes.db import Database, new_id, utcnow
from kap_outcomes.events import repository as events_repository
from kap_outcomes.events import retention
from kap_outcomes.events.outbox import BELL
from kap_outcomes.metrics import WEBHOOK_ATTEMPTS
from kap_outcomes.signals import watch
from kap_outcomes.webhooks import delivery
from kap_outcomes.webhooks import repository as webhooks_repository
from kap_outcomes.webhooks.egress import Connections, EgressPolicy, post

log = logging.getLogger("kap_outcomes.worker")

ROUND_INTERVAL_S = 0.05
"""The shortest time between two rounds of the worker (what a delivery may wait at most for
the round that takes it; a round takes every event written since the last)."""
SIGNAL_WATCH_INTERVAL_S = 2.0
"""The signal watch runs at most this often: it reloads every patient a batch touched, which
under a stream of submissions is better done for many events at once than for each."""
_SUCCEEDED = WEBHOOK_ATTEMPTS.labels("succeeded")
_FAILED = WEBHOOK_ATTEMPTS.labels("failed")

RECORD_GATHER_S = 0.05
"""How long attempts gather before a batch of them is stored: under a stream of deliveries one
transaction records every attempt of that time rather than the few that ended during the
previous transaction (a delivery is recorded later, never sent later; its lease covers it)."""

RETENTION_INTERVAL_S = 60.0
"""How often the worker looks for events past the retention (then deletes them a batch per
round until none are left)."""


class Worker:
    """One worker: fan-out, sending, recording, the signal watch.

    What a round costs is what it finds to do. A round starts when this process committed
    events (the bell: the fan-out runs at once, one write), when a poll interval has passed
    (a read first, for events other processes wrote: an idle worker never writes), or when a
    send finished. Events past the retention are deleted a batch per round (looked for once a
    minute). Due deliveries (retries, and those left over when every slot was busy)
    are looked for once per poll interval, or at once when some are known to be waiting.
    Attempts are recorded in batches: every attempt that ended within ``RECORD_GATHER_S`` (or
    while the previous batch was being stored) goes into the next transaction.
    """

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.owner = new_id()
        self.policy = EgressPolicy(tuple(settings.webhook_allowed_networks))
        self._sending: set[asyncio.Task[None]] = set()  # queued for a slot, or sending
        self._queued: set[str] = set()  # leased deliveries not yet given a slot
        self._stopping = False
        self._slots = asyncio.Semaphore(settings.webhook_concurrency)
        self._capacity = settings.webhook_concurrency * _waves(settings)
        self._wake = asyncio.Event()
        self._watch_at = 0.0
        self._claim_at = 0.0
        self._prune_at = 0.0
        self._fan_out_again = True
        self._attempted: list[delivery.Attempted] = []
        self._recording: asyncio.Task[None] | None = None
        self._watching: asyncio.Task[None] | None = None
        self.caseload = Refresh(db)
        self.exports = ExportRunner(db, settings, self.owner)

    def _lease_until(self) -> datetime:
        return utcnow() + timedelta(seconds=self.settings.webhook_lease_s)

    async def run(self, stop: asyncio.Event) -> None:
        async with Connections() as connections:
            seen = BELL.rings - 1  # the first round looks at the log
            try:
                while not stop.is_set():
                    rings = BELL.rings  # read once: a ring after it wakes the next wait
                    rung, seen = rings != seen, rings
                    try:
                        busy = await self._step(connections, rung=rung)
                    except Exception as exc:  # a database outage: try again later
                        log.warning("worker step failed: %s", type(exc).__name__)
                        busy = False
                    if not busy:
                        await self._idle(seen, stop)
                    # under a stream of writes, one round per interval takes many events at
                    # once instead of competing with the writers for every commit
                    await asyncio.sleep(ROUND_INTERVAL_S)
            finally:
                await self.exports.stop()  # a running export goes back to the queue
                # let the attempts under way finish and be recorded, then give up on the rest
                # (their leases run out and they are sent again); none starts from now on
                self._stopping = True
                if self._sending:
                    await asyncio.wait(self._sending, timeout=self.settings.webhook_timeout_s + 1)
                for task in self._sending:
                    task.cancel()
                await asyncio.gather(*self._sending, return_exceptions=True)
                unfinished = [t for t in (self._recording, self._watching) if t is not None]
                await asyncio.gather(*unfinished, return_exceptions=True)
                await self._release_queued()

    async def _release_queued(self) -> None:
        """Hand back the leases of deliveries never attempted, so that the next worker takes
        them at once rather than after their lease (a failure here leaves them to the lease)."""
        if not self._queued:
            return
        queued, self._queued = sorted(self._queued), set()
        try:
            await self.db.write(
                partial(webhooks_repository.release, delivery_ids=queued, owner=self.owner)
            )
        except Exception as exc:
            log.warning("releasing webhook leases failed: %s", type(exc).__name__)

    async def _idle(self, seen: int, stop: asyncio.Event) -> None:
        self._wake.clear()
        waits = [
            asyncio.create_task(BELL.wait(seen, self.settings.worker_poll_interval_s)),
            asyncio.create_task(stop.wait()),
            asyncio.create_task(self._wake.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()

    async def _step(self, connections: Connections, *, rung: bool) -> bool:
        """One round; True when it did something (so the next round comes at once)."""
        busy = await self.exports.step()
        if self._watching is None and time.monotonic() >= self._watch_at:
            # beside the rounds: a long run of the watch never holds up a delivery
            self._watching = asyncio.create_task(self._watch())
        if (
            rung
            or self._fan_out_again
            or await self.db.read(partial(events_repository.behind, name=delivery.FAN_OUT))
        ):
            lease_until = self._lease_until()
            done = await self.db.write(
                partial(
                    delivery.fan_out,
                    owner=self.owner,
                    lease_until=lease_until,
                    lease_limit=self._room(),
                )
            )
            busy |= done.moved
            self._fan_out_again = done.full
            if done.unleased:
                self._claim_at = 0.0
            self._send(connections, done.work, lease_until)
        room = self._room()
        if room and time.monotonic() >= self._claim_at:
            self._claim_at = time.monotonic() + self.settings.worker_poll_interval_s
            if await self.db.read(partial(webhooks_repository.any_due, now=utcnow())):
                lease_until = self._lease_until()
                claimed = await self.db.write(
                    partial(delivery.claim, owner=self.owner, lease_until=lease_until, limit=room)
                )
                self._send(connections, claimed, lease_until)
                if len(claimed) == room:  # there may be more
                    self._claim_at = 0.0
                busy |= bool(claimed)
        if time.monotonic() >= self._prune_at:
            busy |= await self._prune()
        busy |= await self.caseload.step()
        return busy

    async def _prune(self) -> bool:
        """One batch of events past the retention; True when there may be more."""
        before = utcnow() - timedelta(days=self.settings.events_retention_days)
        self._prune_at = time.monotonic() + RETENTION_INTERVAL_S
        if not await self.db.read(partial(retention.any_due, before=before)):
            return False
        if await self.db.write(partial(retention.prune, before=before)) < retention.BATCH:
            return False
        self._prune_at = 0.0  # a whole batch: the next round takes the next one
        return True

    async def _watch(self) -> None:
        started = time.monotonic()
        try:
            plan = await self.db.read(watch.plan)
            if plan is not None:
                await self.db.write(partial(watch.apply, plan=plan))
        except Exception as exc:  # a database outage: the next run tries again
            log.warning("signal watch failed: %s", type(exc).__name__)
        finally:
            self._watch_at = started + SIGNAL_WATCH_INTERVAL_S
            self._watching = None

    def _room(self) -> int:
        return max(self._capacity - len(self._sending), 0)

    def _send(
        self, connections: Connections, works: list[delivery.Work], lease_until: datetime
    ) -> None:
        for work in works:
            self._queued.add(work.delivery_id)
            task = asyncio.create_task(self._deliver(connections, work, lease_until))
            self._sending.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._wake.set()  # room for more

    async def _deliver(
        self, connections: Connections, work: delivery.Work, lease_until: datetime
    ) -> None:
        async with self._slots:  # at most webhook_concurrency attempts at a time
            if self._stopping:  # left queued: its lease is handed back
                return
            self._queued.discard(work.delivery_id)
            at = utcnow()
            if at + timedelta(seconds=self.settings.webhook_timeout_s) >= lease_until:
                # the lease could run out mid-attempt and another worker send it too: leave
                # it to be claimed again (a lease shorter than the timeout is a
                # misconfiguration; the leased waves fit in the lease otherwise)
                log.warning("webhook lease too short for an attempt; delivery left for later")
                return
            answer = await post(
                connections,
                url=work.url,
                body=work.body.encode(),
                headers=delivery.signed_headers(work, at),
                policy=self.policy,
                timeout_s=self.settings.webhook_timeout_s,
            )
        (_SUCCEEDED if answer.succeeded else _FAILED).inc()
        self._attempted.append(delivery.Attempted(work, answer, at))
        if self._recording is None:  # else the batch being stored takes it next
            self._recording = asyncio.create_task(self._record())

    async def _record(self) -> None:
        """Store the attempts made so far, one transaction per batch (what ended within
        ``RECORD_GATHER_S``), until none are left."""
        try:
            while self._attempted:
                if not self._stopping:
                    await asyncio.sleep(RECORD_GATHER_S)
                batch, self._attempted = self._attempted, []
                try:
                    await self.db.write(
                        partial(
                            delivery.record,
                            owner=self.owner,
                            attempts=batch,
                            schedule=self.settings.webhook_retry_schedule_s,
                        )
                    )
                except Exception as exc:  # the leases run out and the deliveries are retried
                    log.warning("recording webhook attempts failed: %s", type(exc).__name__)
        finally:
            self._recording = None


def _waves(settings: Settings) -> int:
    """How many rounds of ``webhook_concurrency`` attempts a worker leases at once: as many as
    can run one after the other, each to its timeout, and still end within the lease (one
    timeout of the lease left over), at least one. A round of the worker then takes more
    than ``webhook_concurrency`` deliveries while the attempts are quick (a receiver that
    answers in a millisecond no longer waits for the next round) without a lease ever
    running out behind a queue of slow ones."""
    return max(1, int(settings.webhook_lease_s // settings.webhook_timeout_s) - 1)


class EmbeddedWorker:
    """The worker as a task of the app's event loop (started and stopped by its lifespan)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._worker = Worker(db, settings)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._worker.run(self._stop), name="kap-worker")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=10)
            except TimeoutError:
                self._task.cancel()


async def run_forever(settings: Settings) -> None:
    """``kap-outcomes worker``: until SIGINT or SIGTERM."""
    import signal

    from kap_outcomes.db import make_engine

    db = Database(
        make_engine(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms),
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await Worker(db, settings).run(stop)
    finally:
        db.dispose()
