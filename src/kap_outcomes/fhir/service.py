"""FHIR use cases, mapped onto the same data and services as /v1.

A form ingested here is created by ``assessments.service.submit_assessment``: the same
scoring, safety alerts and caseload hook as a form posted on /v1 (source ``ehr``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import Connection

from kap_outcomes.assessments import service as assessments_service
from kap_outcomes.assessments.models import Assessment, AssessmentCreate, Source
from kap_outcomes.audit import service as audit
from kap_outcomes.auth.service import Principal
from kap_outcomes.clinical.instruments import ITEM_LOINC, PHQ9_ITEM9, TOTAL_LOINC, Instrument
from kap_outcomes.db import new_id, utcnow
from kap_outcomes.errors import DomainError, not_found
from kap_outcomes.fhir import ingest, observation_ingest, repository, resources, search
from kap_outcomes.fhir.outcome import fhir_error
from kap_outcomes.fhir.questionnaires import (
    LOINC,
    QUESTIONNAIRES,
    instrument_of_canonical,
)
from kap_outcomes.fhir.repository import AssessmentFilter
from kap_outcomes.idempotency.service import Outcome
from kap_outcomes.patients.models import Patient
from kap_outcomes.rows import as_model


@dataclass(frozen=True, slots=True)
class SearchRequest:
    base: str
    query: search.Query
    count: int
    cursor: str | None

    @property
    def params(self) -> list[tuple[str, str]]:
        """What the ``self`` link repeats: the parameters that were applied."""
        return self.query.applied


def _patients(principal: Principal, request: SearchRequest) -> list[str] | None:
    """The patients ``patient`` and ``subject`` allow (None: any). A patient token searches
    its own patient only; naming another is a 404."""
    sets: list[set[str]] = []
    for name, values in request.query.values.items():
        if name.partition(":")[0] not in ("patient", "subject"):
            continue
        for value in values:
            found = (
                search.reference_id(one, "Patient", name, base=request.base)
                for one in search.alternatives(value, name)
            )
            sets.append({patient_id for patient_id in found if patient_id is not None})
    wanted = search.intersect(sets)
    if principal.is_patient:
        if wanted is not None and principal.patient_id not in wanted:
            raise not_found("Patient")
        patients: list[str] | None = (
            [principal.patient_id] if principal.patient_id is not None else []
        )
    else:
        patients = None if wanted is None else sorted(wanted)
    if patients is not None and len(patients) == 1:
        audit.concerns(patients[0])
    return patients


def _ids(request: SearchRequest) -> set[str] | None:
    return search.intersect(
        [set(search.alternatives(value, "_id")) for value in request.query.all("_id")]
    )


def _count_only(request: SearchRequest) -> bool:
    return search.SUMMARY_COUNT[1] in request.query.all(search.SUMMARY_COUNT[0])


def _searchset(
    request: SearchRequest,
    path: str,
    *,
    total: int,
    found: list[dict[str, Any]] | None = None,
    next_cursor: str | None = None,
    included: list[dict[str, Any]] | None = None,
    params: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """A searchset with its ``total``; with ``_summary=count``, the total alone."""
    count_only = _count_only(request)
    return search.bundle(
        base=request.base,
        path=path,
        params=request.params if params is None else params,
        resources=[] if count_only else found or [],
        next_cursor=None if count_only else next_cursor,
        total=total,
        included=None if count_only else included,
    )


def _visible(conn: Connection, principal: Principal, assessment_id: str) -> Assessment:
    """The assessment, if this principal may see it (audited as its patient's), else a 404."""
    row = repository.get_assessment(
        conn, organisation_id=principal.organisation_id, assessment_id=assessment_id
    )
    if row is None or (principal.is_patient and row.patient_id != principal.patient_id):
        raise not_found("Resource")
    audit.concerns(row.patient_id)
    return row


# Questionnaires -------------------------------------------------------------------------


def read_questionnaire(questionnaire_id: str) -> dict[str, Any]:
    found = QUESTIONNAIRES.get(questionnaire_id)
    if found is None:
        raise not_found("Questionnaire")
    return found


def search_questionnaires(*, request: SearchRequest) -> dict[str, Any]:
    matches = list(QUESTIONNAIRES.values())
    for url in request.query.all("url"):
        canonical, _, version = url.partition("|")
        matches = [q for q in matches if q["url"] == canonical and version in ("", q["version"])]
    ids = _ids(request)
    if ids is not None:
        matches = [q for q in matches if q["id"] in ids]
    return _searchset(request, "Questionnaire", total=len(matches), found=matches)


# Patients --------------------------------------------------------------------------------


def read_patient(conn: Connection, *, principal: Principal, patient_id: str) -> dict[str, Any]:
    if principal.is_patient and principal.patient_id != patient_id:
        raise not_found("Patient")
    row = repository.get_patient(
        conn, organisation_id=principal.organisation_id, patient_id=patient_id
    )
    if row is None:
        raise not_found("Patient")
    return _patients_out(conn, [row])[0]


def _patients_out(conn: Connection, rows: list[Any]) -> list[dict[str, Any]]:
    found = repository.patient_identifiers_of(conn, patient_ids=[r.id for r in rows])
    return [resources.patient(r, found.get(r.id, [])) for r in rows]


def search_patients(
    conn: Connection, *, principal: Principal, request: SearchRequest
) -> dict[str, Any]:
    sets = [set(search.alternatives(value, "_id")) for value in request.query.all("_id")]
    for value in request.query.all("identifier"):
        found: set[str] = set()
        for one in search.alternatives(value, "identifier"):
            system, code = search.token(one, "identifier")
            found.update(
                repository.patients_with_identifier(
                    conn, organisation_id=principal.organisation_id, system=system, value=code
                )
            )
        sets.append(found)
    wanted = search.intersect(sets)
    if principal.is_patient:
        own = {principal.patient_id} if principal.patient_id is not None else set()
        wanted = own if wanted is None else wanted & own
    elif wanted is None:
        raise fhir_error(400, "required", "search Patient by identifier or _id", "identifier")
    rows = (
        repository.patients_by_ids(
            conn, organisation_id=principal.organisation_id, patient_ids=sorted(wanted)
        )
        if wanted
        else []
    )
    if len(rows) == 1:
        audit.concerns(rows[0].id)
    return _searchset(
        request,
        "Patient",
        total=len(rows),
        found=[] if _count_only(request) else _patients_out(conn, rows),
        # identifier values are PHI: never in a link this service generates
        params=[(name, value) for name, value in request.params if name != "identifier"],
    )


# Conditions ------------------------------------------------------------------------------

_CONDITION_BY_SLUG = {slug: name for name, slug in resources.CONDITION_SLUGS.items()}


def _condition_of(condition_id: str) -> tuple[str, str] | None:
    """(patient id, condition name) of ``{patient id}-{slug}``, or None."""
    for slug, name in _CONDITION_BY_SLUG.items():
        if condition_id.endswith(f"-{slug}"):
            return condition_id[: -len(slug) - 1], name
    return None


def read_condition(conn: Connection, *, principal: Principal, condition_id: str) -> dict[str, Any]:
    parsed = _condition_of(condition_id)
    if parsed is None:
        raise not_found("Condition")
    patient_id, name = parsed
    if principal.is_patient and principal.patient_id != patient_id:
        raise not_found("Condition")
    row = repository.get_patient(
        conn, organisation_id=principal.organisation_id, patient_id=patient_id
    )
    if row is None or name not in resources.recorded_conditions(row):
        raise not_found("Condition")
    audit.concerns(row.id)
    return resources.condition(row, name)


def search_conditions(
    conn: Connection, *, principal: Principal, request: SearchRequest
) -> dict[str, Any]:
    """By patient (or subject), _id and SNOMED CT code (or the text's condition name); one
    page is a keyset page over the patients, newest first."""
    patient_ids = _patients(principal, request)
    ids = _ids(request)
    named: list[set[str]] = []
    if ids is not None:
        pairs = {parsed for one in ids if (parsed := _condition_of(one)) is not None}
        wanted_patients = {patient_id for patient_id, _ in pairs}
        patient_ids = sorted(
            wanted_patients if patient_ids is None else wanted_patients & set(patient_ids)
        )
        named.append({name for _, name in pairs})
    by_code = {
        code: name for name, (code, _) in resources.CONDITION_CODES.items() if code is not None
    }
    for value in request.query.all("code"):
        found: set[str] = set()
        for one in search.alternatives(value, "code"):
            system, code = search.token(one, "code")
            if system in (None, resources.SNOMED) and code in by_code:
                found.add(by_code[code])
        named.append(found)
    names = search.intersect(named)

    def chosen(row: Patient) -> list[str]:
        return [
            name
            for name in resources.recorded_conditions(row)
            if name in resources.CONDITION_SLUGS
            and (names is None or name in names)
            and (ids is None or resources.condition_id(row.id, name) in ids)
        ]

    def expand(row: Patient) -> list[dict[str, Any]]:
        return [resources.condition(row, name) for name in chosen(row)]

    every = repository.search_patients_with_conditions(
        conn,
        organisation_id=principal.organisation_id,
        patient_ids=patient_ids,
        any_of=None if names is None else sorted(names),
        at_or_before=None,
        limit=None,
    )
    total = sum(len(chosen(row)) for row in every)
    if _count_only(request):
        return _searchset(request, "Condition", total=total)
    at_or_before: tuple[datetime, str] | None = None
    skip = 0
    if request.cursor is not None:
        at, row_id, skip = search.decode_cursor(request.cursor)
        at_or_before = (at, row_id)
    out: list[dict[str, Any]] = []
    next_cursor: str | None = None
    while next_cursor is None:
        rows = repository.search_patients_with_conditions(
            conn,
            organisation_id=principal.organisation_id,
            patient_ids=patient_ids,
            any_of=None if names is None else sorted(names),
            at_or_before=at_or_before,
            limit=request.count + 1,
        )
        for row in rows:
            start = skip if at_or_before is not None and row.id == at_or_before[1] else 0
            produced = expand(row)
            for position in range(start, len(produced)):
                if len(out) == request.count:
                    next_cursor = search.encode_cursor(row.created_at, row.id, position)
                    break
                out.append(produced[position])
            if next_cursor is not None:
                break
        if next_cursor is not None or len(rows) <= request.count:
            break
        # every row of this batch was read and expanded to fewer than a page: read on
        last = rows[-1]
        at_or_before, skip = (last.created_at, last.id), 10**6
    return _searchset(request, "Condition", total=total, found=out, next_cursor=next_cursor)


# QuestionnaireResponses --------------------------------------------------------------------


def _qr(conn: Connection, row: Assessment) -> dict[str, Any]:
    identifier = repository.identifiers_of(conn, assessment_ids=[row.id]).get(row.id)
    return resources.questionnaire_response(row, identifier)


def read_questionnaire_response(
    conn: Connection, *, principal: Principal, response_id: str
) -> dict[str, Any]:
    row = _visible(conn, principal, response_id)
    if not resources.is_form(row):
        raise fhir_error(
            404,
            "not-found",
            f"a total-only score has no form: read it as Observation/{row.id}-total",
            "QuestionnaireResponse",
        )
    return _qr(conn, row)


def _page(
    conn: Connection,
    *,
    where: AssessmentFilter,
    request: SearchRequest,
    expand: Callable[[Any], list[dict[str, Any]]],
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to ``count`` resources, newest assessment first, and the cursor of the rest."""
    at_or_before: tuple[datetime, str] | None = None
    skip = 0
    if request.cursor is not None:
        at, row_id, skip = search.decode_cursor(request.cursor)
        at_or_before = (at, row_id)
    rows = repository.search_assessments(
        conn, where=where, at_or_before=at_or_before, limit=request.count + 1
    )
    out: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        produced = expand(row)
        start = skip if index == 0 and at_or_before is not None and row.id == at_or_before[1] else 0
        for position in range(start, len(produced)):
            if len(out) == request.count:
                return out, search.encode_cursor(row.administered_at, row.id, position)
            out.append(produced[position])
    return out, None


def _assessment_filter(
    principal: Principal, request: SearchRequest, date: str, *, forms_only: bool = False
) -> AssessmentFilter:
    """What every search of assessments starts from: this organisation, the patients asked
    for (a patient: only itself), the resource's ``date`` parameter and ``_lastUpdated``."""
    query = request.query
    return AssessmentFilter(
        organisation_id=principal.organisation_id,
        patient_ids=_patients(principal, request),
        administered=search.date_bounds(query.all(date), date),
        updated=search.date_bounds(query.all("_lastUpdated"), "_lastUpdated"),
        forms_only=forms_only,
    )


def search_questionnaire_responses(
    conn: Connection, *, principal: Principal, request: SearchRequest
) -> dict[str, Any]:
    query = request.query
    where = _assessment_filter(principal, request, "authored", forms_only=True)
    ids = _ids(request)
    if ids is not None:
        where.ids = sorted(ids)
    instruments = search.intersect(
        [
            {
                instrument.value
                for one in search.alternatives(value, "questionnaire")
                if (instrument := instrument_of_canonical(one)) is not None
            }
            for value in query.all("questionnaire")
        ]
    )
    if instruments is not None:
        where.instruments = sorted(instruments)
    total = repository.count_assessments(conn, where=where)
    if _count_only(request):
        return _searchset(request, "QuestionnaireResponse", total=total)
    found, next_cursor = _page(
        conn,
        where=where,
        request=request,
        expand=lambda row: [resources.questionnaire_response(row, None)],
    )
    identifiers = repository.identifiers_of(conn, assessment_ids=[r["id"] for r in found])
    for resource in found:
        if resource["id"] in identifiers:
            system, value = identifiers[resource["id"]]
            resource["identifier"] = {"system": system, "value": value}
    included: list[dict[str, Any]] = []
    if {"QuestionnaireResponse:subject", "QuestionnaireResponse:patient"} & set(
        query.all("_include")
    ):
        included = _subjects(conn, principal=principal, found=found)
    return _searchset(
        request,
        "QuestionnaireResponse",
        total=total,
        found=found,
        next_cursor=next_cursor,
        included=included,
    )


def _subjects(
    conn: Connection, *, principal: Principal, found: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The Patients the resources of a page are about (``_include=…:subject``), once each."""
    wanted = sorted({r["subject"]["reference"].partition("/")[2] for r in found})
    rows = repository.patients_by_ids(
        conn, organisation_id=principal.organisation_id, patient_ids=wanted
    )
    return _patients_out(conn, rows)


# Observations --------------------------------------------------------------------------------

_CODES: dict[str, tuple[Instrument, str]] = {}
for _instrument in (Instrument.PHQ9, Instrument.GAD7):
    _total = TOTAL_LOINC[_instrument]
    if _total is not None:
        _CODES[_total] = (_instrument, resources.TOTAL)
_CODES[ITEM_LOINC[Instrument.PHQ9][PHQ9_ITEM9]] = (Instrument.PHQ9, resources.ITEM9)
for _kind, _code in zip(
    resources.observation_kinds(Instrument.CSSRS), ITEM_LOINC[Instrument.CSSRS], strict=True
):
    _CODES[_code] = (Instrument.CSSRS, _kind)


def read_observation(
    conn: Connection, *, principal: Principal, observation_id: str
) -> dict[str, Any]:
    assessment_id, _, kind = observation_id.rpartition("-")
    row = _visible(conn, principal, assessment_id)
    if kind not in resources.served_kinds(row):
        raise not_found("Observation")
    return resources.observation(row, kind)


def _shaped(shape: repository.Shape) -> Assessment:
    """A stand-in row with what ``resources.served_kinds`` reads."""
    return as_model(
        Assessment,
        {
            "id": "",
            "instrument": shape.instrument,
            "total": 0 if shape.has_total else None,
            "items": [] if shape.is_form else None,
            "item9": 0 if shape.has_item9 else None,
        },
    )


def _coded_kinds(values: list[str]) -> set[tuple[Instrument, str]] | None:
    """The (instrument, kind) pairs the ``code`` parameters allow: alternatives within one
    parameter, every parameter at once; None when no ``code`` was given."""
    code_sets: list[set[tuple[Instrument, str]]] = []
    for value in values:
        wanted: set[tuple[Instrument, str]] = set()
        for one in search.alternatives(value, "code"):
            system, code = search.token(one, "code")
            if system in (None, LOINC) and code in _CODES:
                wanted.add(_CODES[code])
        code_sets.append(wanted)
    return search.intersect(code_sets)


def _derived_from(
    conn: Connection, *, principal: Principal, found: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``_include=Observation:derived-from``: the QuestionnaireResponses the page's
    Observations were derived from."""
    forms = sorted(
        {
            derived["reference"].partition("/")[2]
            for o in found
            for derived in o.get("derivedFrom", [])
        }
    )
    if not forms:
        return []
    rows = repository.search_assessments(
        conn,
        where=AssessmentFilter(
            organisation_id=principal.organisation_id, ids=forms, forms_only=True
        ),
        at_or_before=None,
        limit=len(forms),
    )
    identifiers = repository.identifiers_of(conn, assessment_ids=forms)
    return [resources.questionnaire_response(row, identifiers.get(row.id)) for row in rows]


def search_observations(
    conn: Connection, *, principal: Principal, request: SearchRequest
) -> dict[str, Any]:
    query = request.query
    where = _assessment_filter(principal, request, "date")
    ids = _ids(request)
    if ids is not None:
        where.ids = sorted({observation_id.rpartition("-")[0] for observation_id in ids})
    kinds = _coded_kinds(query.all("code"))
    if kinds is not None:
        where.instruments = sorted({i.value for i, _ in kinds})
        if kinds and all(kind == resources.TOTAL for _, kind in kinds):
            where.with_total = True
    for value in query.all("category"):
        categories = [
            search.token(one, "category") for one in search.alternatives(value, "category")
        ]
        if not any(
            code == "survey" and system in (None, resources.OBSERVATION_CATEGORY)
            for system, code in categories
        ):
            where.instruments = []

    def chosen(row: Assessment) -> list[str]:
        instrument = Instrument(row.instrument)
        return [
            kind
            for kind in resources.served_kinds(row)
            if (ids is None or f"{row.id}-{kind}" in ids)
            and (kinds is None or (instrument, kind) in kinds)
        ]

    def expand(row: Assessment) -> list[dict[str, Any]]:
        return [resources.observation(row, kind) for kind in chosen(row)]

    if ids is None:  # by kind of assessment: one grouped query
        total = sum(
            shape.n * len(chosen(_shaped(shape)))
            for shape in repository.assessment_shapes(conn, where=where)
        )
    else:  # at most a few assessments, each with its own ids
        total = sum(
            len(chosen(row))
            for row in repository.search_assessments(
                conn, where=where, at_or_before=None, limit=None
            )
        )
    if _count_only(request):
        return _searchset(request, "Observation", total=total)
    found, next_cursor = _page(conn, where=where, request=request, expand=expand)
    includes = set(query.all("_include"))
    included: list[dict[str, Any]] = []
    if "Observation:derived-from" in includes:
        included += _derived_from(conn, principal=principal, found=found)
    if {"Observation:subject", "Observation:patient"} & includes:
        included += _subjects(conn, principal=principal, found=found)
    return _searchset(
        request,
        "Observation",
        total=total,
        found=found,
        next_cursor=next_cursor,
        included=included,
    )


# Ingest ----------------------------------------------------------------------------------------


def _conditional_matches(conn: Connection, *, principal: Principal, condition: str) -> list[str]:
    name, sep, value = condition.partition("=")
    if name != "identifier" or not sep or "&" in value:
        raise fhir_error(
            400,
            "not-supported",
            "If-None-Exist supports identifier=system|value only",
            "If-None-Exist",
        )
    system, code = search.token(value, "If-None-Exist")
    # Only what the caller may read: a patient token's condition sees its own forms only, so
    # another patient's form answers exactly as an identifier that exists nowhere.
    return repository.assessments_with_identifier(
        conn,
        organisation_id=principal.organisation_id,
        system=system,
        value=code,
        patient_id=(principal.patient_id or "") if principal.is_patient else None,
    )


def _resolve_subject(
    conn: Connection,
    *,
    principal: Principal,
    subject: ingest.SubjectRef,
    where: str = "QuestionnaireResponse.subject",
) -> str:
    """The patient a subject names: ``Patient/{id}``, or an identifier in any system stored
    for the organisation's patients (``external_id`` under our own system). The identifier's
    value is never repeated in an error."""
    if subject.patient_id is not None:
        row = repository.get_patient(
            conn, organisation_id=principal.organisation_id, patient_id=subject.patient_id
        )
        found = [] if row is None else [str(row.id)]
    else:
        found = repository.patients_with_identifier(
            conn,
            organisation_id=principal.organisation_id,
            system=subject.identifier_system,
            value=subject.identifier_value or "",
        )
        where = f"{where}.identifier"
    if principal.is_patient:
        found = [one for one in found if one == principal.patient_id]
    if len(found) > 1:
        raise fhir_error(
            422,
            "multiple-matches",
            "this identifier names several patients of this organisation: send its system",
            where,
        )
    if not found:
        raise fhir_error(422, "not-found", "no such patient in this organisation", where)
    return found[0]


def _assessment_create(fields: dict[str, Any], where: Callable[[str], str]) -> AssessmentCreate:
    """The /v1 body of an ingested administration; a value it refuses is a 422 at
    ``where(field)``."""
    try:
        return AssessmentCreate.model_validate({**fields, "source": Source.ehr})
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        raise fhir_error(422, "value", str(first["msg"]), where(field)) from None


def _submit(
    conn: Connection,
    *,
    principal: Principal,
    patient_id: str,
    data: AssessmentCreate,
    identifiers: list[tuple[str, str]],
    where: str,
) -> Assessment:
    """Store an ingested administration through the same service as /v1 (the scoring's
    checks a 422 at ``where``), with its identifiers; returns the stored row."""
    try:
        created = assessments_service.submit_assessment(
            conn, principal=principal, patient_id=patient_id, data=data
        )
    except DomainError as exc:
        if exc.status == 422 and exc.errors:  # the scoring's checks: point at the item/score
            raise fhir_error(422, "value", exc.errors[0].detail, where) from None
        raise
    for system, value in identifiers:
        repository.insert_identifier(
            conn,
            {
                "id": new_id(),
                "organisation_id": principal.organisation_id,
                "assessment_id": created.id,
                "system": system,
                "value": value,
                "created_at": utcnow(),
            },
        )
    row = repository.get_assessment(
        conn, organisation_id=principal.organisation_id, assessment_id=created.id
    )
    assert row is not None  # stored just above
    return row


def _single_match(conn: Connection, *, principal: Principal, condition: str) -> str | None:
    """The one resource an If-None-Exist names, if any; several are a 412."""
    matches = _conditional_matches(conn, principal=principal, condition=condition)
    if len(matches) > 1:
        raise fhir_error(412, "duplicate", "several resources match If-None-Exist", "If-None-Exist")
    return matches[0] if matches else None


def _to_create(form: ingest.IngestedForm) -> AssessmentCreate:
    return _assessment_create(
        {
            "instrument": form.instrument,
            "items": form.items,
            "difficulty": form.difficulty,
            "administered_at": form.authored,
        },
        lambda field: (
            "QuestionnaireResponse." + ("authored" if field == "administered_at" else "item")
        ),
    )


def create_questionnaire_response(
    conn: Connection,
    *,
    principal: Principal,
    document: dict[str, Any],
    if_none_exist: str | None,
) -> Outcome:
    """Conditional create (If-None-Exist): the unit of work of the route's create (which
    makes it idempotent under an Idempotency-Key)."""
    form = ingest.read_form(document)
    if if_none_exist is not None:
        match = _single_match(conn, principal=principal, condition=if_none_exist)
        if match is not None:
            row = _visible(conn, principal, match)
            if not resources.is_form(row):
                raise fhir_error(
                    409,
                    "conflict",
                    "If-None-Exist names a total-only score, which has no form: "
                    f"read Observation/{row.id}-total",
                    "If-None-Exist",
                )
            return Outcome(200, orjson.dumps(_qr(conn, row)).decode(), replayed=False)
    data = _to_create(form)
    patient_id = _resolve_subject(conn, principal=principal, subject=form.subject)
    audit.concerns(patient_id)
    identifier = form.identifier
    if identifier is None and if_none_exist is not None:
        system, value = search.token(if_none_exist.partition("=")[2], "If-None-Exist")
        identifier = (system or "", value)
    stored = _submit(
        conn,
        principal=principal,
        patient_id=patient_id,
        data=data,
        identifiers=[] if identifier is None else [identifier],
        where="QuestionnaireResponse.item",
    )
    return _created(resources.questionnaire_response(stored, identifier))


def _created(resource: dict[str, Any], status_code: int = 201) -> Outcome:
    return Outcome(status_code, orjson.dumps(resource).decode(), replayed=False)


# Ingest of Observations (flowsheet scores) --------------------------------------------------


def _score_create(score: observation_ingest.Score) -> AssessmentCreate:
    return _assessment_create(
        {
            "instrument": score.instrument,
            "items": score.items,
            "total": score.total,
            "item9": score.item9,
            "difficulty": score.difficulty,
            "administered_at": score.effective,
        },
        lambda _field: f"{score.where}.effective",
    )


def _primary(row: Assessment, code: str | None = None) -> dict[str, Any]:
    """The Observation an ingested Observation became: its own kind where this service
    serves one (total, item 9), else the assessment's first (the total, if any)."""
    kinds = resources.served_kinds(row)
    instrument = Instrument(row.instrument)
    for kind in kinds:
        if code is not None and resources.observation_code(instrument, kind) == code:
            return resources.observation(row, kind)
    return resources.observation(row, kinds[0])


def _store_score(
    conn: Connection, *, principal: Principal, score: observation_ingest.Score
) -> Assessment:
    """One administration → one assessment, through the same service as /v1."""
    data = _score_create(score)
    patient_id = _resolve_subject(
        conn, principal=principal, subject=score.subject, where=f"{score.where}.subject"
    )
    audit.concerns(patient_id)
    return _submit(
        conn,
        principal=principal,
        patient_id=patient_id,
        data=data,
        identifiers=score.identifiers,
        where=score.where,
    )


def create_observation(
    conn: Connection,
    *,
    principal: Principal,
    document: dict[str, Any],
    if_none_exist: str | None,
) -> Outcome:
    """A total score, PHQ-9 item 9 or a panel of them: conditional create (If-None-Exist).
    Answers with the Observation it became."""
    score = observation_ingest.read_observation(document)
    code = next(iter(code for _, code in score.entries), None)
    if if_none_exist is not None:
        match = _single_match(conn, principal=principal, condition=if_none_exist)
        if match is not None:
            return _created(_primary(_visible(conn, principal, match), code), 200)
        if not score.identifiers:
            system, value = search.token(if_none_exist.partition("=")[2], "If-None-Exist")
            score = replace(score, identifiers=[(system or "", value)])

    row = _store_score(conn, principal=principal, score=score)
    return _created(_primary(row, code))


def process_transaction(
    conn: Connection,
    *,
    principal: Principal,
    document: dict[str, Any],
    base: str,
) -> Outcome:
    """A transaction Bundle of Observations: every administration stored, or none (one
    database transaction). Answers with a transaction-response Bundle, one entry per entry."""
    scores, count = observation_ingest.read_transaction(document)
    responses: list[dict[str, Any] | None] = [None] * count
    for score in scores:
        row = _store_score(conn, principal=principal, score=score)
        for index, code in score.entries:
            served = _primary(row, code)
            version = served["meta"]["versionId"]
            responses[index] = {
                "fullUrl": f"{base}/Observation/{served['id']}",
                "response": {
                    "status": "201 Created",
                    "location": f"Observation/{served['id']}/_history/{version}",
                    "etag": f'W/"{version}"',
                    "lastModified": served["meta"]["lastUpdated"],
                },
            }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [entry for entry in responses if entry is not None],
    }
    return _created(bundle, 200)
