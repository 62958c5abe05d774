"""FHIR R4 routes under /fhir/R4: parse, call one service function, answer fhir+json."""

from __future__ import annotations

import hashlib
from functools import partial
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import Response

from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.auth.dependencies import DbDep, PrincipalDep
from kap_outcomes.fhir import search, service
from kap_outcomes.fhir.capability import capability_statement
from kap_outcomes.fhir.outcome import FHIR_MEDIA_TYPE
from kap_outcomes.fhir.search import DEFAULT_COUNT, MAX_COUNT
from kap_outcomes.http import IdempotencyKey
from kap_outcomes.idempotency.service import check_key
from kap_outcomes.links import fhir_base

BASE = "/fhir/R4"


class FhirResponse(Response):
    media_type = FHIR_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes | str):
            return content.encode() if isinstance(content, str) else content
        return orjson.dumps(content)


RESOURCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["resourceType"],
    "properties": {"resourceType": {"type": "string"}},
}


def _documented(description: str) -> dict[str, Any]:
    return {"description": description, "content": {FHIR_MEDIA_TYPE: {"schema": RESOURCE_SCHEMA}}}


FHIR_ERRORS: dict[int | str, dict[str, Any]] = {
    200: _documented("The resource, or a searchset Bundle"),
    400: _documented("OperationOutcome: a search parameter or header is not valid"),
    401: _documented("OperationOutcome (login): missing, unknown, expired or revoked token"),
    403: _documented("OperationOutcome (forbidden)"),
    404: _documented("OperationOutcome (not-found): not in the caller's organisation"),
    413: _documented("OperationOutcome (too-costly): the body is too large"),
    415: _documented("OperationOutcome: the body is not JSON"),
    422: _documented("OperationOutcome: the resource is not acceptable"),
    503: _documented("OperationOutcome (transient): the database is unreachable"),
}

router = APIRouter(
    prefix=BASE,
    tags=["fhir"],
    responses=FHIR_ERRORS,
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
    Query(max_length=16, description="``Patient/{id}`` or ``{id}``; repeated: all must hold."),
]
Ids = Annotated[
    list[str] | None,
    Query(alias="_id", max_length=16, description="Ids, comma-separated (any of them)."),
]


def _base(request: Request) -> str:
    return fhir_base(request)  # configured, never the request's Host


def _search(
    request: Request, resource_type: str, count: int = DEFAULT_COUNT, cursor: str | None = None
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


def _resource(resource: dict[str, Any]) -> FhirResponse:
    version = resource.get("meta", {}).get("versionId")
    headers = {"ETag": f'W/"{version}"'} if version else None
    return FhirResponse(resource, headers=headers)


@router.get("/metadata")
async def fhir_metadata(request: Request) -> FhirResponse:
    """CapabilityStatement (no token needed)."""
    return FhirResponse(capability_statement(_base(request)))


@router.get("/Questionnaire")
async def fhir_search_questionnaires(
    request: Request,
    principal: PrincipalDep,
    url: Params = None,
    ids: Ids = None,
    prefer: Prefer = None,
) -> FhirResponse:
    """The PHQ-9, GAD-7 and C-SSRS screener Questionnaires (LOINC-coded), by canonical."""
    return FhirResponse(service.search_questionnaires(request=_search(request, "Questionnaire")))


@router.get("/Questionnaire/{questionnaire_id}")
async def fhir_read_questionnaire(
    questionnaire_id: FhirId, principal: PrincipalDep
) -> FhirResponse:
    return _resource(service.read_questionnaire(questionnaire_id))


@router.post(
    "/QuestionnaireResponse",
    status_code=201,
    responses={
        201: _documented("Created: the stored QuestionnaireResponse"),
        409: _documented("OperationOutcome: a request with this Idempotency-Key is in flight"),
        412: _documented("OperationOutcome: several resources match If-None-Exist"),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                FHIR_MEDIA_TYPE: {"schema": RESOURCE_SCHEMA},
                "application/json": {"schema": RESOURCE_SCHEMA},
            },
        }
    },
)
async def fhir_create_questionnaire_response(
    request: Request,
    principal: PrincipalDep,
    db: DbDep,
    if_none_exist: Annotated[str | None, Header(alias="If-None-Exist", max_length=600)] = None,
    idempotency_key: IdempotencyKey = None,
) -> FhirResponse:
    """Ingest a completed form (conditional create with ``If-None-Exist: identifier=s|v``).

    Scored, checked for safety and stored exactly like a form posted on /v1 (source ``ehr``).
    """
    key = check_key(idempotency_key)
    body = await request.body()
    digest = hashlib.sha256(
        b"POST QuestionnaireResponse\n" + (if_none_exist or "").encode() + b"\n" + body
    ).hexdigest()
    created = await db.write(
        partial(
            service.create_questionnaire_response,
            principal=principal,
            body=body,
            if_none_exist=if_none_exist,
            idempotency_key=key,
            fingerprint=digest,
        )
    )
    resource = orjson.loads(created.body)
    version = resource["meta"]["versionId"]
    location = f"{_base(request)}/QuestionnaireResponse/{resource['id']}/_history/{version}"
    return FhirResponse(
        created.body,
        status_code=created.status_code,
        headers={"Location": location, "ETag": f'W/"{version}"'},
    )


@router.get("/QuestionnaireResponse/{response_id}")
async def fhir_read_questionnaire_response(
    response_id: FhirId, principal: PrincipalDep, db: DbDep
) -> FhirResponse:
    return _resource(
        await db.read(
            partial(
                service.read_questionnaire_response, principal=principal, response_id=response_id
            )
        )
    )


@router.get("/QuestionnaireResponse")
async def fhir_search_questionnaire_responses(
    request: Request,
    principal: PrincipalDep,
    db: DbDep,
    patient: Reference = None,
    subject: Reference = None,
    ids: Ids = None,
    authored: Params = None,
    questionnaire: Params = None,
    last_updated: LastUpdated = None,
    count: Count = DEFAULT_COUNT,
    cursor: CursorParam = None,
    prefer: Prefer = None,
) -> FhirResponse:
    """Search by patient (or subject), _id, authored, questionnaire, _lastUpdated; newest
    first. A repeated parameter narrows (all must hold)."""
    return FhirResponse(
        await db.read(
            partial(
                service.search_questionnaire_responses,
                principal=principal,
                request=_search(request, "QuestionnaireResponse", count, cursor),
            )
        )
    )


@router.get("/Observation/{observation_id}")
async def fhir_read_observation(
    observation_id: FhirId, principal: PrincipalDep, db: DbDep
) -> FhirResponse:
    return _resource(
        await db.read(
            partial(service.read_observation, principal=principal, observation_id=observation_id)
        )
    )


@router.get("/Observation")
async def fhir_search_observations(
    request: Request,
    principal: PrincipalDep,
    db: DbDep,
    patient: Reference = None,
    subject: Reference = None,
    ids: Ids = None,
    code: Params = None,
    category: Params = None,
    date: Params = None,
    last_updated: LastUpdated = None,
    count: Count = DEFAULT_COUNT,
    cursor: CursorParam = None,
    prefer: Prefer = None,
) -> FhirResponse:
    """Derived scores (totals, PHQ-9 item 9, C-SSRS answers): searchset with ``next`` links."""
    return FhirResponse(
        await db.read(
            partial(
                service.search_observations,
                principal=principal,
                request=_search(request, "Observation", count, cursor),
            )
        )
    )


@router.get("/Patient/{patient_id}")
async def fhir_read_patient(patient_id: FhirId, principal: PrincipalDep, db: DbDep) -> FhirResponse:
    return _resource(
        await db.read(partial(service.read_patient, principal=principal, patient_id=patient_id))
    )


@router.get("/Patient")
async def fhir_search_patients(
    request: Request,
    principal: PrincipalDep,
    db: DbDep,
    identifier: Params = None,
    ids: Ids = None,
    prefer: Prefer = None,
) -> FhirResponse:
    """By ``identifier=https://kap-outcomes.dev/fhir/sid/external-id|{external_id}`` or
    ``_id``."""
    return FhirResponse(
        await db.read(
            partial(
                service.search_patients,
                principal=principal,
                request=_search(request, "Patient"),
            )
        )
    )
