"""Every query of bulk export: export jobs (claim, heartbeat, finish, sweep), patient groups,
and the streaming reads an export is written from."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)

from kap_outcomes.assessments.models import Assessment
from kap_outcomes.bulk.models import BulkExport, PatientGroup, PatientGroupMember
from kap_outcomes.fhir.models import FhirIdentifier
from kap_outcomes.patients.models import Patient
from kap_outcomes.rows import before_key, every, first, owned, table_of

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


def _scoped(
    query: Select[Any],
    table: Any,
    patient_column: Any,
    *,
    organisation_id: str,
    group_id: str | None,
    since: datetime | None,
    changed_column: Any,
) -> Select[Any]:
    query = query.where(table.c.organisation_id == organisation_id)
    if group_id is not None:
        query = query.where(
            patient_column.in_(select(members.c.patient_id).where(members.c.group_id == group_id))
        )
    if since is not None:
        query = query.where(changed_column > since)
    return query


def _stream(conn: Connection, query: Select[Any]) -> Iterator[Sequence[Any]]:
    """Batches of rows from a server-side cursor (PostgreSQL) or SQLite's stepping cursor:
    never the whole result in memory."""
    result = conn.execution_options(yield_per=BATCH).execute(query)
    try:
        yield from result.partitions(BATCH)
    finally:
        result.close()


def stream_patients(
    conn: Connection, *, organisation_id: str, group_id: str | None, since: datetime | None
) -> Iterator[Sequence[Any]]:
    query = _scoped(
        select(patients),
        patients,
        patients.c.id,
        organisation_id=organisation_id,
        group_id=group_id,
        since=since,
        changed_column=patients.c.created_at,
    )
    return _stream(conn, query)


def stream_assessments(
    conn: Connection, *, organisation_id: str, group_id: str | None, since: datetime | None
) -> Iterator[Sequence[Any]]:
    query = _scoped(
        select(assessments),
        assessments,
        assessments.c.patient_id,
        organisation_id=organisation_id,
        group_id=group_id,
        since=since,
        changed_column=assessments.c.version_at,
    )
    return _stream(conn, query)


def identifiers_of(
    conn: Connection, *, assessment_ids: Sequence[str]
) -> dict[str, tuple[str, str]]:
    if not assessment_ids:
        return {}
    rows = conn.execute(
        select(identifiers.c.assessment_id, identifiers.c.system, identifiers.c.value).where(
            identifiers.c.assessment_id.in_(assessment_ids)
        )
    ).all()
    return {row[0]: (row[1], row[2]) for row in rows}
