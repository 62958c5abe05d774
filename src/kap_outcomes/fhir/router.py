"""FHIR R4 routes under /fhir/R4: parse, call one service function, answer fhir+json."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response

from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.auth.dependencies import DbDep, PrincipalDep
from kap_outcomes.auth.principal import Principal
from kap_outcomes.creating import Create, Creation, FhirResource
from kap_outcomes.db import Database
from kap_outcomes.fhir import search, service
from kap_outcomes.fhir.capability import capability_statement
from kap_outcomes.fhir.outcome import FHIR_MEDIA_TYPE
from kap_outcomes.fhir.search import DEFAULT_COUNT, MAX_COUNT
from kap_outcomes.http import fhir_base, problems, with_headers
from kap_outcomes.idempotency.service import Outcome

BASE = "/fhir/R4"


class FhirResponse(Response):
    media_type = FHIR_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes | str):
            return content.encode() if isinstance(content, str) else content
        return orjson.dumps(content)


def resource_schema(resource_type: str, description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "required": ["resourceType"],
        "properties": {
            "resourceType": {"type": "string", "const": resource_type},
            "id": {"type": "string"},
            "meta": {"$ref": "#/components/schemas/Meta"},
        },
        "additionalProperties": True,
    }


RESOURCE_SCHEMAS: dict[str, dict[str, Any]] = {
    name: resource_schema(name, description)
    for name, description in {
        "CapabilityStatement": "What this FHIR server supports (FHIR R4)",
        "Bundle": "A searchset Bundle: `entry[].resource`, `link` with `next` while there is more",
        "Patient": "FHIR R4 Patient (pseudonymous: identifiers only)",
        "Questionnaire": "FHIR R4 Questionnaire (LOINC-coded PHQ-9, GAD-7, C-SSRS screener)",
        "QuestionnaireResponse": "FHIR R4 QuestionnaireResponse",
        "Observation": "FHIR R4 Observation (a score: derived from a form, or sent as a total)",
        "Condition": "FHIR R4 Condition (a recorded condition of a patient, problem list)",
    }.items()
}
"""The resources the FHIR routes answer with, as components of the OpenAPI document (their
full definitions are FHIR R4's; these name the type and keep generated clients typed)."""
RESOURCE_SCHEMAS["Meta"] = {
    "type": "object",
    "description": "FHIR R4 Meta: versionId, lastUpdated, profile …",
    "properties": {"versionId": {"type": "string"}, "lastUpdated": {"type": "string"}},
    "additionalProperties": True,
}


def _documented(resource_type: str, description: str, *headers: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {FHIR_MEDIA_TYPE: {"schema": {"$ref": f"#/components/schemas/{resource_type}"}}},
    } | (with_headers(optional=headers) if headers else {})


def _read(resource_type: str) -> dict[int | str, dict[str, Any]]:
    return problems(ok=_documented(resource_type, f"The {resource_type}", "ETag"))


def _searchset(resource_type: str) -> dict[int | str, dict[str, Any]]:
    return problems(
        (400, "A search parameter is not valid"),
        ok=_documented("Bundle", f"A searchset Bundle of {resource_type} resources"),
    )


router = APIRouter(
    prefix=BASE,
    tags=["fhir"],
    default_response_class=FhirResponse,
    route_class=AuditedRoute,
)

FhirId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-.]+$")]
Count = Annotated[int, Query(alias="_count", ge=1, le=MAX_COUNT)]
CursorParam = Annotated[str | None, Query(alias="_cursor", max_length=256)]
LastUpdated = Annotated[list[str] | None, Query(alias="_lastUpdated", max_length=8)]
Params = Annotated[list[str] | None, Query(max_length=16)]
Prefer = Annotated[
    str | None,
    Header(
        max_length=256,
        description="``handling=strict``: an unknown or unsupported parameter is a 400 "
        "(by default it is ignored and left out of the self link).",
    ),
]
Reference = Annotated[
    list[str] | None,
    Query(
        max_length=16,
        description="``Patient/{id}`` or ``{id}``; repeated: all must hold.",
    ),
]
Include = Annotated[
    list[str] | None,
    Query(
        alias="_include",
        max_length=4,
        description="``QuestionnaireResponse:subject`` (the Patients); on Observation also "
        "``Observation:derived-from`` (the forms). Entries with search.mode include.",
    ),
]
Sort = Annotated[
    str | None,
    Query(
        alias="_sort",
        max_length=64,
        description="``-date`` (Observation) or ``-authored`` (QuestionnaireResponse): newest "
        "first, also the order without it.",
    ),
]
Summary = Annotated[
    str | None,
    Query(
        alias="_summary",
        max_length=16,
        description="``count``: the Bundle's ``total`` only, no entries.",
    ),
]
Ids = Annotated[
    list[str] | None,
    Query(alias="_id", max_length=16, description="Ids, comma-separated (any of them)."),
]


def _base(request: Request) -> str:
    return fhir_base(request)  # configured, never the request's Host


def _search(
    request: Request,
    resource_type: str,
    count: int = DEFAULT_COUNT,
    cursor: str | None = None,
) -> service.SearchRequest:
    """The applied parameters (``Prefer: handling=strict`` refuses any other)."""
    return service.SearchRequest(
        base=_base(request),
        query=search.read_query(
            request.query_params.multi_items(),
            search.SUPPORTED[resource_type],
            strict=search.strict_handling(request.headers.get("prefer")),
        ),
        count=count,
        cursor=cursor,
    )


FHIR_CREATE = Create(FhirResource, document_body=False)
"""Every FHIR create: the caller, the Idempotency-Key and the JSON body, read as on /v1."""

IfNoneExist = Annotated[str | None, Header(alias="If-None-Exist", max_length=600)]


def _fhir_body(resource_type: str) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{resource_type}"}
    return {
        "requestBody": {
            "required": True,
            "content": {
                FHIR_MEDIA_TYPE: {"schema": schema},
                "application/json": {"schema": schema},
            },
        }
    }


@dataclass(frozen=True, slots=True)
class Conditional:
    """A FHIR create, conditional under ``If-None-Exist`` (part of what makes a retry under
    the same Idempotency-Key the same request): 201, or 200 with the match."""

    new: Creation[FhirResource]
    if_none_exist: str | None

    async def respond(self, create: Callable[..., Outcome]) -> Response:
        base = _base(self.new.request)

        def headers(resource: Mapping[str, Any]) -> dict[str, str]:
            version = resource["meta"]["versionId"]
            kind, id_ = resource["resourceType"], resource["id"]
            return {
                "Location": f"{base}/{kind}/{id_}/_history/{version}",
                "ETag": f'W/"{version}"',
            }

        return await self.new.respond(
            partial(
                create,
                principal=self.new.principal,
                document=self.new.data.document,
                if_none_exist=self.if_none_exist,
            ),
            headers,
            media_type=FHIR_MEDIA_TYPE,
            condition=self.if_none_exist or "",
        )


async def _conditional(
    new: Annotated[Creation[FhirResource], Depends(FHIR_CREATE)],
    if_none_exist: IfNoneExist = None,
) -> Conditional:
    return Conditional(new, if_none_exist)


ConditionalCreate = Annotated[Conditional, Depends(_conditional)]


def _conditional_route(resource_type: str, *, matched: str, created: str) -> dict[str, Any]:
    """The keywords of a conditional create's route: its answers (201, or 200 with the match)
    and its body."""
    responses = problems(
        (400, "The body is not a JSON object, or a header is not valid"),
        (412, "Several resources match If-None-Exist"),
        ok=_documented(resource_type, matched, "ETag"),
    )
    responses[201] = _documented(resource_type, created, "ETag", "Location")
    return {"status_code": 201, "responses": responses, "openapi_extra": _fhir_body(resource_type)}


_SHARED = (("ids", Ids), ("summary", Summary), ("prefer", Prefer))
_ABOUT_PATIENTS = (("patient", Reference), ("subject", Reference))
_NEWEST_FIRST = (("last_updated", LastUpdated), ("include", Include), ("sort", Sort))
_PAGED = (("count", Count), ("cursor", CursorParam))


def _search_of(
    resource_type: str, *own: tuple[str, Any], paged: bool = True
) -> Callable[..., service.SearchRequest]:
    """The parameters of a search of ``resource_type``: declared (OpenAPI, FastAPI's checks)
    and read as one ``SearchRequest`` (:func:`_search`), a dependency."""
    named = [*own, *_SHARED, *(_PAGED if paged else ())]
    parameters = [inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request)]
    parameters += [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=annotation,
            default=DEFAULT_COUNT if name == "count" else None,
        )
        for name, annotation in named
    ]

    def read(
        request: Request,
        count: int = DEFAULT_COUNT,
        cursor: str | None = None,
        **_declared: Any,
    ) -> service.SearchRequest:
        return _search(request, resource_type, count, cursor)

    setattr(read, "__signature__", inspect.Signature(parameters))  # noqa: B010
    return read


QuestionnaireSearch = Annotated[
    service.SearchRequest, Depends(_search_of("Questionnaire", ("url", Params), paged=False))
]
QuestionnaireResponseSearch = Annotated[
    service.SearchRequest,
    Depends(
        _search_of(
            "QuestionnaireResponse",
            *_ABOUT_PATIENTS,
            ("authored", Params),
            ("questionnaire", Params),
            *_NEWEST_FIRST,
        )
    ),
]
ObservationSearch = Annotated[
    service.SearchRequest,
    Depends(
        _search_of(
            "Observation",
            *_ABOUT_PATIENTS,
            ("code", Params),
            ("category", Params),
            ("date", Params),
            *_NEWEST_FIRST,
        )
    ),
]
PatientSearch = Annotated[
    service.SearchRequest, Depends(_search_of("Patient", ("identifier", Params), paged=False))
]
ConditionSearch = Annotated[
    service.SearchRequest, Depends(_search_of("Condition", *_ABOUT_PATIENTS, ("code", Params)))
]


async def _searched(
    db: Database,
    principal: Principal,
    use_case: Callable[..., Any],
    found: service.SearchRequest,
) -> FhirResponse:
    return FhirResponse(await db.read(partial(use_case, principal=principal, request=found)))


async def _one(db: Database, use_case: Callable[..., dict[str, Any]], **ids: Any) -> FhirResponse:
    """One resource, with its version as the ``ETag``."""
    return _resource(await db.read(partial(use_case, **ids)))


def _resource(resource: dict[str, Any]) -> FhirResponse:
    version = resource.get("meta", {}).get("versionId")
    headers = {"ETag": f'W/"{version}"'} if version else None
    return FhirResponse(resource, headers=headers)


@router.get(
    "/metadata",
    responses=problems(ok=_documented("CapabilityStatement", "Capabilities")),
)
async def fhir_metadata(request: Request) -> FhirResponse:
    """CapabilityStatement (no token needed)."""
    return FhirResponse(capability_statement(_base(request)))


@router.get("/Questionnaire", responses=_searchset("Questionnaire"))
async def fhir_search_questionnaires(
    principal: PrincipalDep, found: QuestionnaireSearch
) -> FhirResponse:
    """The PHQ-9, GAD-7 and C-SSRS screener Questionnaires (LOINC-coded), by canonical."""
    return FhirResponse(service.search_questionnaires(request=found))


@router.get("/Questionnaire/{questionnaire_id}", responses=_read("Questionnaire"))
async def fhir_read_questionnaire(
    questionnaire_id: FhirId, principal: PrincipalDep
) -> FhirResponse:
    return _resource(service.read_questionnaire(questionnaire_id))


@router.post(
    "/QuestionnaireResponse",
    **_conditional_route(
        "QuestionnaireResponse",
        matched="If-None-Exist matched one: the stored one",
        created="Created: the stored QuestionnaireResponse",
    ),
)
async def fhir_create_questionnaire_response(create: ConditionalCreate) -> Response:
    """Ingest a completed form (conditional create with ``If-None-Exist: identifier=s|v``).

    Scored, checked for safety and stored exactly like a form posted on /v1 (source ``ehr``).
    """
    return await create.respond(service.create_questionnaire_response)


@router.get("/QuestionnaireResponse/{response_id}", responses=_read("QuestionnaireResponse"))
async def fhir_read_questionnaire_response(
    response_id: FhirId, principal: PrincipalDep, db: DbDep
) -> FhirResponse:
    return await _one(
        db,
        service.read_questionnaire_response,
        principal=principal,
        response_id=response_id,
    )


@router.get("/QuestionnaireResponse", responses=_searchset("QuestionnaireResponse"))
async def fhir_search_questionnaire_responses(
    principal: PrincipalDep, db: DbDep, found: QuestionnaireResponseSearch
) -> FhirResponse:
    """Search by patient (or subject), _id, authored, questionnaire, _lastUpdated; newest
    first. A repeated parameter narrows (all must hold)."""
    return await _searched(db, principal, service.search_questionnaire_responses, found)


@router.get("/Observation/{observation_id}", responses=_read("Observation"))
async def fhir_read_observation(
    observation_id: FhirId, principal: PrincipalDep, db: DbDep
) -> FhirResponse:
    return await _one(
        db, service.read_observation, principal=principal, observation_id=observation_id
    )


@router.get("/Observation", responses=_searchset("Observation"))
async def fhir_search_observations(
    principal: PrincipalDep, db: DbDep, found: ObservationSearch
) -> FhirResponse:
    """Derived scores (totals, PHQ-9 item 9, C-SSRS answers): searchset with ``next`` links."""
    return await _searched(db, principal, service.search_observations, found)


@router.post(
    "/Observation",
    **_conditional_route(
        "Observation",
        matched="If-None-Exist matched one: the stored score",
        created="Created: the Observation the score is served as",
    ),
)
async def fhir_create_observation(create: ConditionalCreate) -> Response:
    """Ingest a PHQ-9 or GAD-7 total (44261-6, 70274-6), PHQ-9 item 9 (44260-8), or a panel
    of them (``component``, or ``hasMember`` of contained Observations): one assessment
    through the same service as /v1 (source ``ehr``). Conditional create with
    ``If-None-Exist: identifier=s|v``."""
    return await create.respond(service.create_observation)


@router.post(
    "",
    responses=problems(
        (400, "The body is not a JSON object, or a header is not valid"),
        ok=_documented("Bundle", "The transaction-response Bundle: where each entry went"),
    ),
    openapi_extra=_fhir_body("Bundle"),
)
async def fhir_transaction(
    new: Annotated[Creation[FhirResource], Depends(FHIR_CREATE)],
) -> Response:
    """A transaction Bundle of Observations (``POST Observation`` entries): what is about one
    patient at one instant is one administration (a total with its item 9); all are stored
    or none."""
    return await new.respond(
        partial(
            service.process_transaction,
            principal=new.principal,
            document=new.data.document,
            base=_base(new.request),
        ),
        lambda _bundle: {},
        status_code=200,
        media_type=FHIR_MEDIA_TYPE,
    )


@router.get("/Patient/{patient_id}", responses=_read("Patient"))
async def fhir_read_patient(patient_id: FhirId, principal: PrincipalDep, db: DbDep) -> FhirResponse:
    return await _one(db, service.read_patient, principal=principal, patient_id=patient_id)


@router.get("/Patient", responses=_searchset("Patient"))
async def fhir_search_patients(
    principal: PrincipalDep, db: DbDep, found: PatientSearch
) -> FhirResponse:
    """By ``identifier``: ``https://kap-outcomes.dev/fhir/sid/external-id|{external_id}``,
    ``{system}|{value}`` of any identifier stored for the patient, or ``{value}`` in any of
    them; or by ``_id``. Identifier values are never repeated in the Bundle's links."""
    return await _searched(db, principal, service.search_patients, found)


@router.get("/Condition/{condition_id}", responses=_read("Condition"))
async def fhir_read_condition(
    condition_id: FhirId, principal: PrincipalDep, db: DbDep
) -> FhirResponse:
    """One recorded condition of a patient; its id is ``{patient id}-{condition}``."""
    return await _one(db, service.read_condition, principal=principal, condition_id=condition_id)


@router.get("/Condition", responses=_searchset("Condition"))
async def fhir_search_conditions(
    principal: PrincipalDep, db: DbDep, found: ConditionSearch
) -> FhirResponse:
    """Recorded conditions (problem-list items, SNOMED CT where one matches) by patient (or
    subject), _id or code; searchset with ``next`` links."""
    return await _searched(db, principal, service.search_conditions, found)
