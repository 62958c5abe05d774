"""All queries of the FHIR adapter (reads of assessments and patients, form identifiers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, TypeVarTuple

from sqlalchemy import Connection, Select, false, func, insert, literal, or_, select

from kap_outcomes.assessments import repository as assessments_repository
from kap_outcomes.assessments.models import Assessment
from kap_outcomes.fhir.models import FhirIdentifier
from kap_outcomes.patients import repository as patients_repository
from kap_outcomes.patients.models import EXTERNAL_ID_SYSTEM, Patient, PatientIdentifier
from kap_outcomes.rows import before_key, every, table_of

Ts = TypeVarTuple("Ts")

assessments = table_of(Assessment)
patients = table_of(Patient)
identifiers = table_of(FhirIdentifier)
patient_identifiers = table_of(PatientIdentifier)


@dataclass
class AssessmentFilter:
    """What a FHIR search asks of the assessments behind the resources."""

    organisation_id: str
    patient_ids: list[str] | None = None  # one of these (None: any; empty: none)
    ids: list[str] | None = None
    instruments: list[str] | None = None
    with_total: bool = False
    forms_only: bool = False  # completed forms only (no total-only score)
    administered: list[tuple[str, datetime]] = field(default_factory=list)
    updated: list[tuple[str, datetime]] = field(default_factory=list)


_OPS = {
    ">=": lambda c, v: c >= v,
    ">": lambda c, v: c > v,
    "<=": lambda c, v: c <= v,
    "<": lambda c, v: c < v,
}


def _filtered(query: Select[*Ts], where: AssessmentFilter) -> Select[*Ts]:
    query = query.where(assessments.c.organisation_id == where.organisation_id)
    if where.patient_ids is not None:
        query = query.where(assessments.c.patient_id.in_(where.patient_ids))
    if where.ids is not None:
        query = query.where(assessments.c.id.in_(where.ids))
    if where.instruments is not None:
        query = query.where(assessments.c.instrument.in_(where.instruments))
    if where.with_total:
        query = query.where(assessments.c.total.is_not(None))
    if where.forms_only:
        query = query.where(assessments.c["items"].is_not(None))
    for op, value in where.administered:
        query = query.where(_OPS[op](assessments.c.administered_at, value))
    for op, value in where.updated:
        query = query.where(_OPS[op](assessments.c.version_at, value))
    return query


def count_assessments(conn: Connection, *, where: AssessmentFilter) -> int:
    """How many assessments a search matches (a searchset's ``total`` of forms)."""
    return int(
        conn.execute(_filtered(select(func.count()).select_from(assessments), where)).scalar_one()
    )


class Shape(NamedTuple):
    """A kind of assessment, as far as which Observations it is served as goes."""

    instrument: str
    has_total: bool
    is_form: bool
    has_item9: bool
    n: int


def assessment_shapes(conn: Connection, *, where: AssessmentFilter) -> list[Shape]:
    """What decides which Observations the matching assessments are served as, counted by
    kind of assessment (instrument, whether it has a total, is a form, has an item 9 beside
    a total): a searchset's ``total`` in one grouped query, reading no answers."""
    shape = (
        assessments.c.instrument,
        assessments.c.total.is_not(None).label("has_total"),
        assessments.c["items"].is_not(None).label("is_form"),
        assessments.c.item9.is_not(None).label("has_item9"),
    )
    query = select(*shape, func.count().label("n")).select_from(assessments)
    rows = conn.execute(_filtered(query, where).group_by(*shape))
    return [Shape(*row) for row in rows]


def search_assessments(
    conn: Connection,
    *,
    where: AssessmentFilter,
    at_or_before: tuple[datetime, str] | None,
    limit: int | None,
) -> list[Assessment]:
    """Newest first, keyset on (administered_at, id), the cursor's row included."""
    query = _filtered(select(assessments), where)
    query = before_key(
        query, assessments.c.administered_at, assessments.c.id, at_or_before, inclusive=True
    )
    return every(conn, Assessment, query if limit is None else query.limit(limit))


get_assessment = assessments_repository.get
get_patient = patients_repository.get
patients_by_ids = patients_repository.by_ids
patient_identifiers_of = patients_repository.identifiers_of


def search_patients_with_conditions(
    conn: Connection,
    *,
    organisation_id: str,
    patient_ids: list[str] | None,
    any_of: list[str] | None,
    at_or_before: tuple[datetime, str] | None,
    limit: int | None,
) -> list[Patient]:
    """Patients with at least one recorded condition (of ``any_of``, if given), newest first,
    keyset on (created_at, id), the cursor's row included."""
    query = select(patients).where(
        patients.c.organisation_id == organisation_id,
        patients.c.conditions.is_not(None),
        patients.c.conditions != "",
    )
    if patient_ids is not None:
        query = query.where(patients.c.id.in_(patient_ids))
    if any_of is not None:
        # stored as the names joined by commas: a name matches between two commas
        padded = literal(",") + patients.c.conditions + literal(",")
        query = query.where(
            or_(false(), *(padded.contains(f",{name},", autoescape=True) for name in any_of))
        )
    query = before_key(query, patients.c.created_at, patients.c.id, at_or_before, inclusive=True)
    return every(conn, Patient, query if limit is None else query.limit(limit))


def assessments_with_identifier(
    conn: Connection,
    *,
    organisation_id: str,
    system: str | None,
    value: str,
    patient_id: str | None = None,
) -> list[str]:
    """Forms of the organisation (of one patient, if given) stored under an identifier."""
    query = select(identifiers.c.assessment_id).where(
        identifiers.c.organisation_id == organisation_id, identifiers.c.value == value
    )
    if system is not None:
        query = query.where(identifiers.c.system == system)
    if patient_id is not None:
        query = query.join(assessments, assessments.c.id == identifiers.c.assessment_id).where(
            assessments.c.patient_id == patient_id,
            assessments.c.organisation_id == organisation_id,
        )
    return sorted({row[0] for row in conn.execute(query.limit(10)).all()})


def identifiers_of(
    conn: Connection, *, assessment_ids: Sequence[str]
) -> dict[str, tuple[str, str]]:
    if not assessment_ids:
        return {}
    rows = conn.execute(
        select(identifiers.c.assessment_id, identifiers.c.system, identifiers.c.value).where(
            identifiers.c.assessment_id.in_(list(assessment_ids))
        )
    ).all()
    return {row[0]: (row[1], row[2]) for row in rows}


def insert_identifier(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(identifiers).values(**values))


def patients_with_identifier(
    conn: Connection, *, organisation_id: str, system: str | None, value: str
) -> list[str]:
    """The patients of the organisation an identifier names (at most a few): ``external_id``
    under our own system, any stored identifier of ``system``, or with no system, both."""
    found: set[str] = set()
    if system in (None, EXTERNAL_ID_SYSTEM):
        found.update(
            row[0]
            for row in conn.execute(
                select(patients.c.id).where(
                    patients.c.organisation_id == organisation_id,
                    patients.c.external_id == value,
                )
            ).all()
        )
    if system != EXTERNAL_ID_SYSTEM:
        query = select(patient_identifiers.c.patient_id).where(
            patient_identifiers.c.organisation_id == organisation_id,
            patient_identifiers.c.value == value,
        )
        if system is not None:
            query = query.where(patient_identifiers.c.system == system)
        found.update(row[0] for row in conn.execute(query.limit(50)).all())
    return sorted(found)
