"""Running bulk exports: claim one, write its NDJSON files line by line, finish or give up.

An export runs in a thread of the event worker (embedded in ``serve``, or ``kap-outcomes
worker``), one at a time per worker; several workers share the queue on PostgreSQL (``FOR
UPDATE SKIP LOCKED`` and a lease renewed by a heartbeat every few seconds). Rows come from
a server-side cursor in batches, each resource is written as its line is made, and one read
transaction (a snapshot: ``REPEATABLE READ`` on PostgreSQL, SQLite's read transaction) serves
the whole export, so its files agree with each other and with ``transactionTime``. Memory does
not grow with the export.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, Any

import anyio
import orjson
from sqlalchemy import Connection

from kap_outcomes.bulk import repository
from kap_outcomes.bulk.models import BulkExport
from kap_outcomes.bulk.service import EXPORT_TYPES, expiry, export_folder
from kap_outcomes.config import Settings
from kap_outcomes.db import Database, utcnow
from kap_outcomes.fhir import repository as fhir_repository
from kap_outcomes.fhir import resources

log = logging.getLogger("kap_outcomes.bulk")

HEARTBEAT_S = 2.0
"""How often a running export renews its lease, reports progress and looks for a cancel."""
SWEEP_INTERVAL_S = 60.0
"""How often the worker deletes expired exports and their files."""
MAX_ATTEMPTS = 3
"""An export whose worker died this many times is failed, not tried again."""


class Stopped(Exception):
    """The export was cancelled (its row is gone) or another worker owns it now."""


class Interrupted(Exception):
    """This worker is stopping: the export goes back to the queue."""


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    organisation_id: str
    group_id: str | None
    types: tuple[str, ...]
    since: datetime | None
    attempts: int

    @classmethod
    def of(cls, row: BulkExport) -> Job:
        return cls(
            id=row.id,
            organisation_id=row.organisation_id,
            group_id=row.group_id if row.level == "group" else None,
            types=tuple(t for t in row.types.split(",") if t in EXPORT_TYPES),
            since=row.since,
            attempts=int(row.attempts) + 1,
        )


class Files:
    """One NDJSON file per type, opened at its first line (a type with nothing to export has
    no file and no entry in the manifest)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.counts: dict[str, int] = {}
        self._open: dict[str, IO[bytes]] = {}

    def write(self, resource: dict[str, Any]) -> None:
        kind = resource["resourceType"]
        out = self._open.get(kind)
        if out is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            out = self._open[kind] = (self.folder / f"{kind}.ndjson").open("wb")
            self.counts[kind] = 0
        out.write(orjson.dumps(resource, option=orjson.OPT_APPEND_NEWLINE))
        self.counts[kind] += 1

    def close(self) -> None:
        for out in self._open.values():
            out.close()
        self._open.clear()

    def total(self) -> int:
        return sum(self.counts.values())


def remove_files(root: Path, export_id: str) -> None:
    shutil.rmtree(export_folder(root, export_id), ignore_errors=True)


class Heartbeat:
    def __init__(
        self, db: Database, job: Job, owner: str, lease_s: float, stop: threading.Event
    ) -> None:
        self.db, self.job, self.owner, self.lease_s, self.stop = db, job, owner, lease_s, stop
        self._at = time.monotonic()

    def __call__(self, files: Files, stage: str) -> None:
        if self.stop.is_set():
            raise Interrupted
        if time.monotonic() - self._at < HEARTBEAT_S:
            return
        self._at = time.monotonic()
        progress = f"{stage}: {files.total()} resources written"
        try:
            alive = self.db.run_write(
                partial(
                    repository.heartbeat,
                    export_id=self.job.id,
                    owner=self.owner,
                    until=utcnow() + timedelta(seconds=self.lease_s),
                    progress=progress,
                )
            )
        except Exception as exc:  # the lock is busy or the database away: the lease lasts
            log.warning("bulk export heartbeat failed: %s", type(exc).__name__)
            return
        if not alive:
            raise Stopped


def _patient_resources(row: Any, identifiers: Any, wanted: set[str]) -> Iterator[dict[str, Any]]:
    if "Patient" in wanted:  # with the EHR's identifiers, as the FHIR API shows it
        yield resources.patient(row, identifiers or [])
    if "Condition" in wanted:
        yield from resources.conditions(row)


def _assessment_resources(row: Any, identifier: Any, wanted: set[str]) -> Iterator[dict[str, Any]]:
    # a total-only score (an EHR's flowsheet total) has no form: Observations only
    if "QuestionnaireResponse" in wanted and resources.is_form(row):
        yield resources.questionnaire_response(row, identifier)
    if "Observation" in wanted:
        yield from resources.observations(row)


_Source = tuple[
    tuple[str, str],
    Callable[..., Iterator[Sequence[Any]]],
    Callable[[Connection, list[str]], dict[str, Any]],
    Callable[[Any, Any, set[str]], Iterator[dict[str, Any]]],
]
_SOURCES: tuple[_Source, ...] = (
    (
        ("Patient", "Condition"),
        repository.stream_patients,
        lambda conn, ids: fhir_repository.patient_identifiers_of(conn, patient_ids=ids),
        _patient_resources,
    ),
    (
        ("QuestionnaireResponse", "Observation"),
        repository.stream_assessments,
        lambda conn, ids: repository.identifiers_of(conn, assessment_ids=ids),
        _assessment_resources,
    ),
)
"""The rows streamed, in this order: the resource types they become (the first needs their
identifiers in other systems, and names the stage the heartbeat reports), the stream, the
identifiers' lookup (one statement a batch), and each row's resources."""


def write_export(
    conn: Connection, job: Job, files: Files, beat: Callable[[Files, str], None]
) -> None:
    """Every resource of the job, streamed from ``conn`` into ``files``."""
    wanted = set(job.types)
    for kinds, stream, identifiers_of, resources_of in _SOURCES:
        if not wanted & set(kinds):
            continue
        for batch in stream(
            conn, organisation_id=job.organisation_id, group_id=job.group_id, since=job.since
        ):
            held = identifiers_of(conn, [row.id for row in batch]) if kinds[0] in wanted else {}
            for row in batch:
                for resource in resources_of(row, held.get(row.id), wanted):
                    files.write(resource)
            beat(files, kinds[0])


@contextmanager
def _unmapped(conn: Connection, sqlite: bool) -> Iterator[None]:
    """On SQLite, read the export without the memory map (``PRAGMA mmap_size=0`` on this
    connection while it runs): through the map every page of the file read would stay in the
    process's resident memory, which would then grow with the export; read() keeps it flat."""
    if not sqlite:
        yield
        return
    mapped = conn.exec_driver_sql("PRAGMA mmap_size").scalar()
    conn.exec_driver_sql("PRAGMA mmap_size=0")
    conn.commit()
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA mmap_size={int(mapped or 0)}")
        conn.commit()


def run_claimed(
    db: Database, settings: Settings, *, row: BulkExport, owner: str, stop: threading.Event
) -> None:
    """Write a claimed export and record how it ended (in the calling thread)."""
    job = Job.of(row)
    root = settings.export_dir
    remove_files(root, job.id)  # what an earlier, interrupted attempt left
    if job.attempts > MAX_ATTEMPTS:
        _fail(db, settings, job, owner, f"the export was interrupted {MAX_ATTEMPTS} times")
        return
    files = Files(export_folder(root, job.id))
    beat = Heartbeat(db, job, owner, settings.export_lease_s, stop)
    try:
        with db.connect(write=False) as conn:
            if not db.sqlite:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with _unmapped(conn, db.sqlite), conn.begin():
                transaction_time = utcnow()
                write_export(conn, job, files, beat)
        files.close()
    except Stopped:
        files.close()
        remove_files(root, job.id)
        return
    except Interrupted:
        files.close()
        remove_files(root, job.id)
        db.run_write(partial(repository.release, export_id=job.id, owner=owner))
        return
    except Exception as exc:
        files.close()
        remove_files(root, job.id)
        log.warning("bulk export failed: %s", type(exc).__name__)
        _fail(db, settings, job, owner, f"the export could not be written ({type(exc).__name__})")
        return
    now = utcnow()
    output = [{"type": t, "count": files.counts[t]} for t in EXPORT_TYPES if t in files.counts]
    finished = db.run_write(
        partial(
            repository.finish,
            export_id=job.id,
            owner=owner,
            values={
                "status": "completed",
                "output": orjson.dumps(output).decode(),
                "transaction_time": transaction_time,
                "finished_at": now,
                "expires_at": expiry(settings.export_retention_s, now),
                "progress": None,
            },
        )
    )
    if not finished:  # cancelled while the last lines were written
        remove_files(root, job.id)


def _fail(db: Database, settings: Settings, job: Job, owner: str, error: str) -> None:
    now = utcnow()
    db.run_write(
        partial(
            repository.finish,
            export_id=job.id,
            owner=owner,
            values={
                "status": "failed",
                "error": error[:200],
                "finished_at": now,
                "expires_at": expiry(settings.export_retention_s, now),
                "progress": None,
            },
        )
    )


def claim_next(db: Database, settings: Settings, owner: str) -> BulkExport | None:
    now = utcnow()
    return db.run_write(
        partial(
            repository.claim,
            owner=owner,
            now=now,
            until=now + timedelta(seconds=settings.export_lease_s),
        )
    )


def run_next(db: Database, settings: Settings, owner: str) -> bool:
    """Claim and run one export in this thread; False when there was none (tests, tools)."""
    row = claim_next(db, settings, owner)
    if row is None:
        return False
    run_claimed(db, settings, row=row, owner=owner, stop=threading.Event())
    return True


def sweep(db: Database, settings: Settings) -> int:
    """Delete the exports past their expiry, and their files."""
    ids = db.run_write(partial(repository.take_expired, now=utcnow()))
    for export_id in ids:
        remove_files(settings.export_dir, export_id)
    return len(ids)


class ExportRunner:
    """The worker's part in bulk export: one export at a time, in a thread, and the sweep."""

    def __init__(self, db: Database, settings: Settings, owner: str) -> None:
        self.db, self.settings, self.owner = db, settings, owner
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._swept_at = float("-inf")
        self._looked_at = float("-inf")

    async def step(self) -> bool:
        """Start the next export if none runs here; True when one was started."""
        if time.monotonic() - self._swept_at >= SWEEP_INTERVAL_S:
            self._swept_at = time.monotonic()
            await anyio.to_thread.run_sync(sweep, self.db, self.settings)
        if self._task is not None and not self._task.done():
            return False
        # at most one look per poll interval: the worker's rounds come many times a second
        # under a stream of writes, and an export may wait half a second to start
        if time.monotonic() - self._looked_at < self.settings.worker_poll_interval_s:
            return False
        self._looked_at = time.monotonic()
        if not await self.db.read(partial(repository.any_claimable, now=utcnow())):
            return False
        row = await anyio.to_thread.run_sync(claim_next, self.db, self.settings, self.owner)
        if row is None:
            return False
        self._task = asyncio.create_task(self._run(row), name="kap-bulk-export")
        return True

    async def _run(self, row: BulkExport) -> None:
        try:
            await anyio.to_thread.run_sync(
                partial(
                    run_claimed, self.db, self.settings, row=row, owner=self.owner, stop=self._stop
                )
            )
        except Exception as exc:  # recording the end failed: the lease runs out, it runs again
            log.warning("bulk export not recorded: %s", type(exc).__name__)

    async def finished(self) -> None:
        """Until the export under way (if any) has ended."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
