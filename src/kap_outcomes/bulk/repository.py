"""Every query of bulk export: export jobs (claim, heartbeat, finish, sweep), patient groups,
and the streaming reads an export is written from."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlmodel import SQLModel

from kap_outcomes.assessments.models import Assessment
from kap_outcomes.bulk.models import BulkExport, PatientGroup, PatientGroupMember
from kap_outcomes.fhir import repository as fhir_repository
from kap_outcomes.fhir.models import FhirIdentifier
from kap_outcomes.patients.models import Patient
from kap_outcomes.rows import all_of, before_key, every, first, owned, table_of

exports = table_of(BulkExport)
groups = table_of(PatientGroup)
members = table_of(PatientGroupMember)
assessments = table_of(Assessment)
patients = table_of(Patient)
identifiers = table_of(FhirIdentifier)

BATCH = 1000
"""Rows fetched at a time from the server-side cursor of an export (memory stays flat)."""


# Export jobs ------------------------------------------------------------------------------


def insert_export(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(exports).values(**values))


def get_export(conn: Connection, *, organisation_id: str, export_id: str) -> BulkExport | None:
    return owned(conn, BulkExport, id=export_id, organisation_id=organisation_id)


def active_exports(conn: Connection, *, organisation_id: str) -> int:
    return int(
        conn.execute(
            select(func.count()).where(
                exports.c.organisation_id == organisation_id,
                exports.c.status.in_(("queued", "running")),
            )
        ).scalar_one()
    )


def delete_export(conn: Connection, *, export_id: str) -> bool:
    return bool(conn.execute(delete(exports).where(exports.c.id == export_id)).rowcount)


def _claimable(now: datetime) -> ColumnElement[bool]:
    c = exports.c
    return or_(c.status == "queued", (c.status == "running") & (c.lease_until < now))


def any_claimable(conn: Connection, *, now: datetime) -> bool:
    return bool(conn.execute(select(exists().where(_claimable(now)))).scalar())


def claim(conn: Connection, *, owner: str, now: datetime, until: datetime) -> BulkExport | None:
    """Lease the oldest export that is queued, or running under a lease that ran out (its
    worker died); another worker's locked row is skipped (PostgreSQL)."""
    c = exports.c
    row = first(
        conn,
        BulkExport,
        select(exports)
        .where(_claimable(now))
        .order_by(c.created_at, c.id)
        .limit(1)
        .with_for_update(skip_locked=True),
    )
    if row is None:
        return None
    conn.execute(
        update(exports)
        .where(c.id == row.id)
        .values(
            status="running",
            lease_owner=owner,
            lease_until=until,
            attempts=c.attempts + 1,
            progress=None,
        )
    )
    return row


def heartbeat(
    conn: Connection, *, export_id: str, owner: str, until: datetime, progress: str
) -> bool:
    """Extend the lease; False when the export was cancelled or another worker took it."""
    c = exports.c
    return bool(
        conn.execute(
            update(exports)
            .where(c.id == export_id, c.lease_owner == owner, c.status == "running")
            .values(lease_until=until, progress=progress[:200])
        ).rowcount
    )


def finish(conn: Connection, *, export_id: str, owner: str, values: dict[str, Any]) -> bool:
    c = exports.c
    return bool(
        conn.execute(
            update(exports)
            .where(c.id == export_id, c.lease_owner == owner, c.status == "running")
            .values(lease_owner=None, lease_until=None, **values)
        ).rowcount
    )


def release(conn: Connection, *, export_id: str, owner: str) -> None:
    """A stopping worker gives its export back to the queue."""
    c = exports.c
    conn.execute(
        update(exports)
        .where(c.id == export_id, c.lease_owner == owner, c.status == "running")
        .values(
            status="queued",
            lease_owner=None,
            lease_until=None,
            progress=None,
            attempts=c.attempts - 1,  # handed back, not lost: not an attempt that failed
        )
    )


def take_expired(conn: Connection, *, now: datetime, limit: int = 100) -> list[str]:
    """Delete the exports past their expiry; their ids (whose files go next)."""
    ids = [
        row[0]
        for row in conn.execute(
            select(exports.c.id).where(exports.c.expires_at < now).limit(limit)
        ).all()
    ]
    if ids:
        conn.execute(delete(exports).where(exports.c.id.in_(ids)))
    return ids


def existing_ids(conn: Connection, *, ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    return {row[0] for row in conn.execute(select(exports.c.id).where(exports.c.id.in_(ids)))}


# Groups -----------------------------------------------------------------------------------


def insert_group(
    conn: Connection, values: dict[str, Any], patient_ids: Sequence[str], organisation_id: str
) -> None:
    conn.execute(insert(groups).values(**values))
    if patient_ids:
        conn.execute(
            insert(members),
            [
                {"group_id": values["id"], "patient_id": p, "organisation_id": organisation_id}
                for p in patient_ids
            ],
        )


def get_group(conn: Connection, *, organisation_id: str, group_id: str) -> PatientGroup | None:
    return owned(conn, PatientGroup, id=group_id, organisation_id=organisation_id)


def group_member_ids(conn: Connection, *, group_id: str) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            select(members.c.patient_id)
            .where(members.c.group_id == group_id)
            .order_by(members.c.patient_id)
        ).all()
    ]


def group_sizes(conn: Connection, *, group_ids: Sequence[str]) -> dict[str, int]:
    if not group_ids:
        return {}
    rows = conn.execute(
        select(members.c.group_id, func.count())
        .where(members.c.group_id.in_(group_ids))
        .group_by(members.c.group_id)
    ).all()
    return {row[0]: int(row[1]) for row in rows}


def search_groups(
    conn: Connection,
    *,
    organisation_id: str,
    ids: Sequence[str] | None,
    names: Sequence[str] | None,
    limit: int,
) -> list[PatientGroup]:
    query = select(groups).where(groups.c.organisation_id == organisation_id)
    if ids is not None:
        query = query.where(groups.c.id.in_(ids))
    if names is not None:
        query = query.where(groups.c.name.in_(names))
    query = before_key(query, groups.c.created_at, groups.c.id, None)
    return every(conn, PatientGroup, query.limit(limit))


def patients_in_organisation(
    conn: Connection, *, organisation_id: str, patient_ids: Sequence[str]
) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(patient_ids), 500):
        chunk = list(patient_ids[start : start + 500])
        found.update(
            row[0]
            for row in conn.execute(
                select(patients.c.id).where(
                    patients.c.organisation_id == organisation_id, patients.c.id.in_(chunk)
                )
            )
        )
    return found


# What an export reads ----------------------------------------------------------------------


M = TypeVar("M", bound=SQLModel)


def _stream(
    conn: Connection,
    model: type[M],
    *,
    patient_key: str,
    changed: str,
    organisation_id: str,
    group_id: str | None,
    since: datetime | None,
) -> Iterator[list[M]]:
    """The organisation's rows of ``model`` (of the group's patients, changed after
    ``since``), in batches from a server-side cursor (PostgreSQL) or SQLite's stepping cursor:
    never the whole result in memory."""
    table = table_of(model)
    query = select(table).where(table.c.organisation_id == organisation_id)
    if group_id is not None:
        group = select(members.c.patient_id).where(members.c.group_id == group_id)
        query = query.where(table.c[patient_key].in_(group))
    if since is not None:
        query = query.where(table.c[changed] > since)
    result = conn.execution_options(yield_per=BATCH).execute(query)
    try:
        for batch in result.partitions(BATCH):
            yield all_of(model, batch)
    finally:
        result.close()


def stream_patients(
    conn: Connection, *, organisation_id: str, group_id: str | None, since: datetime | None
) -> Iterator[list[Patient]]:
    return _stream(
        conn,
        Patient,
        patient_key="id",
        changed="created_at",
        organisation_id=organisation_id,
        group_id=group_id,
        since=since,
    )


def stream_assessments(
    conn: Connection, *, organisation_id: str, group_id: str | None, since: datetime | None
) -> Iterator[list[Assessment]]:
    return _stream(
        conn,
        Assessment,
        patient_key="patient_id",
        changed="version_at",
        organisation_id=organisation_id,
        group_id=group_id,
        since=since,
    )


identifiers_of = fhir_repository.identifiers_of
