"""All queries on patients."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from kap_outcomes.db import new_id
from kap_outcomes.patients.models import Patient, PatientIdentifier
from kap_outcomes.rows import after_key, every, owned, table_of, unless_taken

patients = table_of(Patient)
identifiers = table_of(PatientIdentifier)


def exists(conn: Connection, *, organisation_id: str, patient_id: str) -> bool:
    found = conn.execute(
        select(patients.c.id).where(
            patients.c.id == patient_id, patients.c.organisation_id == organisation_id
        )
    ).first()
    return found is not None


def lock(conn: Connection, *, patient_id: str) -> None:
    """Hold the patient's row until the transaction ends: the writes that read and change a
    patient's courses run one at a time per patient (PostgreSQL ``FOR NO KEY UPDATE``, which
    foreign-key checks, such as an assessment insert, do not wait for). SQLite needs no row
    lock: its writers take the database's write lock at BEGIN."""
    conn.execute(
        select(patients.c.id).where(patients.c.id == patient_id).with_for_update(key_share=True)
    )


def get(conn: Connection, *, organisation_id: str, patient_id: str) -> Patient | None:
    return owned(conn, Patient, id=patient_id, organisation_id=organisation_id)


def insert_patient(conn: Connection, values: dict[str, Any]) -> bool:
    """Insert; False when the external id is taken in this organisation."""
    return unless_taken(conn, insert(patients).values(values))


def update_facts(conn: Connection, *, patient_id: str, values: dict[str, str | None]) -> None:
    conn.execute(update(patients).where(patients.c.id == patient_id).values(**values))


def page(
    conn: Connection,
    *,
    organisation_id: str,
    external_id: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Patient]:
    query = select(patients).where(patients.c.organisation_id == organisation_id)
    if external_id is not None:
        query = query.where(patients.c.external_id == external_id)
    query = after_key(query, patients.c.created_at, patients.c.id, after)
    return every(conn, Patient, query.limit(limit))


def by_ids(conn: Connection, *, organisation_id: str, patient_ids: list[str]) -> list[Patient]:
    """The organisation's patients of ``patient_ids``, by id."""
    query = select(patients).where(
        patients.c.organisation_id == organisation_id, patients.c.id.in_(patient_ids)
    )
    return every(conn, Patient, query.order_by(patients.c.id))


def replace_identifiers(
    conn: Connection,
    *,
    organisation_id: str,
    patient_id: str,
    pairs: list[tuple[str, str]],
    at: datetime,
) -> bool:
    """Set the patient's identifiers to ``pairs``; False (nothing changed) when one of them
    names another patient of the organisation."""
    rows = [
        {
            "id": new_id(),
            "organisation_id": organisation_id,
            "patient_id": patient_id,
            "system": system,
            "value": value,
            "created_at": at,
        }
        for system, value in pairs
    ]
    removed = delete(identifiers).where(identifiers.c.patient_id == patient_id)
    return unless_taken(conn, removed, *([insert(identifiers).values(rows)] if rows else []))


def identifiers_of(conn: Connection, *, patient_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Each patient's identifiers in other systems, ordered by system then value."""
    out: dict[str, list[tuple[str, str]]] = {}
    if not patient_ids:
        return out
    rows = conn.execute(
        select(identifiers.c.patient_id, identifiers.c.system, identifiers.c.value)
        .where(identifiers.c.patient_id.in_(patient_ids))
        .order_by(identifiers.c.system, identifiers.c.value)
    ).all()
    for patient_id, system, value in rows:
        out.setdefault(patient_id, []).append((system, value))
    return out
