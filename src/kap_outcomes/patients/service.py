"""Use cases on patients, and the one place that decides whether a caller reaches one."""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection

from kap_outcomes.audit import service as audit
from kap_outcomes.auth.service import Principal
from kap_outcomes.care import repository as care_repository
from kap_outcomes.db import new_id, utcnow
from kap_outcomes.errors import FieldProblem, conflict, invalid, not_found
from kap_outcomes.events.models import EventType
from kap_outcomes.events.outbox import emit
from kap_outcomes.pagination import Page, cut, decode_cursor
from kap_outcomes.patients import repository
from kap_outcomes.patients.models import (
    Patient,
    PatientCreate,
    PatientIdentifierIn,
    PatientIdentifierPublic,
    PatientPublic,
    PatientUpdate,
    conditions_from_column,
    conditions_to_column,
)
from kap_outcomes.preconditions import check_if_match_tag


def require_patient(conn: Connection, *, principal: Principal, patient_id: str) -> None:
    """404 unless the patient is the caller's own (patient role) or in the caller's organisation.

    Another organisation's patient is a 404, never a 403: existence does not leak.
    """
    if principal.is_patient and principal.patient_id != patient_id:
        raise not_found("Patient")
    if not repository.exists(
        conn, organisation_id=principal.organisation_id, patient_id=patient_id
    ):
        raise not_found("Patient")


def _pairs(data: list[PatientIdentifierIn] | None) -> list[tuple[str, str]]:
    return sorted((i.system, i.value) for i in data or [])


def _shown(pairs: list[tuple[str, str]]) -> list[PatientIdentifierPublic]:
    return [PatientIdentifierPublic(system=system, value=value) for system, value in pairs]


IDENTIFIER_TAKEN = (
    "An identifier in this request already names another patient of this organisation."
)


def _public(conn: Connection, row: Patient) -> PatientPublic:
    course = care_repository.active_course(conn, patient_id=row.id)
    pairs = repository.identifiers_of(conn, patient_ids=[row.id]).get(row.id, [])
    return PatientPublic(
        id=row.id,
        external_id=row.external_id,
        identifiers=_shown(pairs),
        age_group=row.age_group,
        conditions=conditions_from_column(row.conditions),
        created_at=row.created_at,
        active_course_id=course.id if course is not None else None,
    )


def create_patient(conn: Connection, *, principal: Principal, data: PatientCreate) -> PatientPublic:
    patient_id = new_id()
    audit.concerns(patient_id)
    now = utcnow()
    values = {
        "id": patient_id,
        "organisation_id": principal.organisation_id,
        "external_id": data.external_id,
        "age_group": data.age_group,
        "conditions": conditions_to_column(data.conditions),
        "created_at": now,
    }
    if not repository.insert_patient(conn, values):
        raise conflict("A patient with this external_id exists in this organisation.")
    pairs = _pairs(data.identifiers)
    if pairs and not repository.replace_identifiers(
        conn,
        organisation_id=principal.organisation_id,
        patient_id=patient_id,
        pairs=pairs,
        at=now,
    ):
        raise conflict(IDENTIFIER_TAKEN)
    emit(
        conn,
        type=EventType.patient_created,
        organisation_id=principal.organisation_id,
        patient_id=patient_id,
        resource_id=patient_id,
        at=now,
    )
    return PatientPublic(
        id=patient_id,
        external_id=data.external_id,
        identifiers=_shown(pairs),
        age_group=data.age_group,
        conditions=sorted(data.conditions) if data.conditions is not None else None,
        created_at=now,
        active_course_id=None,
    )


def get_patient(conn: Connection, *, principal: Principal, patient_id: str) -> PatientPublic:
    require_patient(conn, principal=principal, patient_id=patient_id)
    row = repository.get(conn, organisation_id=principal.organisation_id, patient_id=patient_id)
    if row is None:  # pragma: no cover - require_patient checked it in this transaction
        raise not_found("Patient")
    return _public(conn, row)


def list_patients(
    conn: Connection,
    *,
    principal: Principal,
    external_id: str | None,
    cursor: str | None,
    limit: int,
) -> Page[PatientPublic]:
    after = decode_cursor(cursor) if cursor else None
    rows = repository.page(
        conn,
        organisation_id=principal.organisation_id,
        external_id=external_id,
        after=after,
        limit=limit + 1,
    )
    rows, next_cursor = cut(rows, limit, lambda r: (r.created_at, r.id))
    if external_id is not None and len(rows) == 1:
        audit.concerns(rows[0].id)  # a look-up of one patient by the clinic's own id
    return Page[PatientPublic](data=[_public(conn, r) for r in rows], next_cursor=next_cursor)


def etag(patient: PatientPublic) -> str:
    """The ETag of a patient's mutable facts (identifiers, age group, conditions): a digest of
    their values, so a stale If-Match is one that names other values than the stored ones."""
    conditions = "-" if patient.conditions is None else ",".join(patient.conditions)
    facts = [patient.age_group or "-", conditions]
    facts += [f"{i.system}\x1f{i.value}" for i in patient.identifiers]
    digest = hashlib.sha256("\x1e".join(facts).encode()).hexdigest()
    return f'"{digest[:20]}"'


def update_patient(
    conn: Connection,
    *,
    principal: Principal,
    patient_id: str,
    data: PatientUpdate,
    if_match: str | None,
) -> PatientPublic:
    """Set the identifiers, age group and conditions of a patient of the caller's
    organisation."""
    if not data.model_fields_set:
        raise invalid(
            [FieldProblem(pointer="", detail="name identifiers, age_group or conditions")],
            detail="Nothing to change.",
        )
    require_patient(conn, principal=principal, patient_id=patient_id)
    repository.lock(conn, patient_id=patient_id)
    row = repository.get(conn, organisation_id=principal.organisation_id, patient_id=patient_id)
    if row is None:  # pragma: no cover - require_patient checked it in this transaction
        raise not_found("Patient")
    current = _public(conn, row)
    check_if_match_tag(if_match, etag(current), "patient")
    values: dict[str, str | None] = {}
    if "age_group" in data.model_fields_set:
        values["age_group"] = data.age_group
        current.age_group = data.age_group
    if "conditions" in data.model_fields_set:
        values["conditions"] = conditions_to_column(data.conditions)
        current.conditions = conditions_from_column(values["conditions"])
    if values:
        repository.update_facts(conn, patient_id=patient_id, values=values)
    if "identifiers" in data.model_fields_set:
        pairs = _pairs(data.identifiers)
        if not repository.replace_identifiers(
            conn,
            organisation_id=principal.organisation_id,
            patient_id=patient_id,
            pairs=pairs,
            at=utcnow(),
        ):
            raise conflict(IDENTIFIER_TAKEN)
        current.identifiers = _shown(pairs)
    return current
