"""Shared HTTP vocabulary for routers: path parameters and documented error responses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Header, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, StringConstraints, TypeAdapter, ValidationError
from sqlalchemy import Connection

from kap_outcomes.auth.principal import Principal
from kap_outcomes.db import Database
from kap_outcomes.errors import (
    FieldProblem,
    invalid,
    problems_from_errors,
    unsupported_media_type,
)
from kap_outcomes.idempotency.service import (
    RETENTION,
    Outcome,
    check_key,
    fingerprint,
    idempotent,
)
from kap_outcomes.json_bodies import is_json_media_type
from kap_outcomes.patterns import FREE_TEXT_PATTERN as FREE_TEXT_PATTERN
from kap_outcomes.patterns import ID_PATTERN as ID_PATTERN
from kap_outcomes.problems import PROBLEM_MEDIA_TYPE as PROBLEM_MEDIA_TYPE

M = TypeVar("M", bound=BaseModel)

ResourceId = Annotated[str, Path(min_length=1, max_length=36, pattern=ID_PATTERN)]

_RESOURCE_ID_TEXT = TypeAdapter(
    Annotated[str, StringConstraints(min_length=1, max_length=36, pattern=ID_PATTERN)]
)


def path_id(request: Request, name: str) -> str:
    """A path parameter that is an id, checked as FastAPI checks a ``ResourceId`` (same rule,
    same errors), for a route that reads its parameters itself (see :func:`json_request_body`)."""
    try:
        return _RESOURCE_ID_TEXT.validate_python(request.path_params[name])
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("path", name, *e["loc"])} for e in exc.errors(include_input=False)]
        ) from None


def path_id_parameter(name: str) -> dict[str, Any]:
    """The OpenAPI description of a path parameter read by :func:`path_id` (as FastAPI would
    write it for a ``ResourceId``)."""
    return {
        "in": "path",
        "name": name,
        "required": True,
        "schema": {
            "maxLength": 36,
            "minLength": 1,
            "pattern": ID_PATTERN,
            "title": name.replace("_", " ").title(),
            "type": "string",
        },
    }


class FieldProblemModel(BaseModel):
    detail: str
    pointer: str | None = None
    parameter: str | None = None


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    errors: list[FieldProblemModel] | None = None


PROBLEM_DESCRIPTIONS: dict[int, str] = {
    400: "The request is not acceptable as it stands",
    401: "Missing, unknown, expired or revoked token",
    403: "The token's role (or scopes) may not do this",
    404: "Not found in the caller's organisation",
    405: "The path does not take this method (`Allow` lists those it takes)",
    409: "Conflicts with what is stored (a duplicate, or a request with this Idempotency-Key "
    "still in flight)",
    412: "If-Match names a version that is no longer current",
    413: "The body is larger than the service accepts",
    415: "The body is not JSON",
    422: "The request is not valid; `errors` points at each problem",
    428: "If-Match with an ETag is required to change this resource (* names none)",
    429: "Too many requests (per token, or failed authentications per address); retry after "
    "`Retry-After` seconds",
    503: "The database is unreachable; retry after `Retry-After` seconds",
}
"""What each error status means, wherever a route does not say more (see :func:`problems`).
Errors are ``application/problem+json`` (``Problem``) on /v1 and ``OperationOutcome`` on
/fhir: kap_outcomes.contract writes their content and headers into the document."""


def problems(
    *statuses: int | tuple[int, str], ok: dict[str, Any] | None = None
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route: the error statuses it can answer beyond those that follow
    from its shape (401/403 when protected, 404 with a path parameter, 413/415/422 with a
    body, 429, 503: see kap_outcomes.contract). ``(409, "why")`` overrides the description;
    ``ok`` documents more of the 200 response (``ok=with_headers("ETag")``)."""
    declared: dict[int | str, dict[str, Any]] = {200: ok} if ok else {}
    for entry in statuses:
        status, description = entry if isinstance(entry, tuple) else (entry, None)
        declared[status] = {"description": description or PROBLEM_DESCRIPTIONS[status]}
    return declared


RESPONSE_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's id (the client's own `X-Request-ID` when it sent a valid "
        "one, else one made here); it names the request in the service's logs.",
        "schema": {"type": "string", "maxLength": 64},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 1},
    },
    "WWW-Authenticate": {
        "description": 'How to authenticate: `Bearer realm="kap-outcomes"`.',
        "schema": {"type": "string"},
    },
    "ETag": {
        "description": "The version of the resource; send it as `If-Match` to change it.",
        "schema": {"type": "string"},
    },
    "Location": {
        "description": "Where the created resource (this version of it) can be read.",
        "schema": {"type": "string", "format": "uri-reference"},
    },
    "Content-Location": {
        "description": "Bulk export: the status URL of the export that was queued.",
        "schema": {"type": "string", "format": "uri"},
    },
    "X-Progress": {
        "description": "Bulk export: how far a running export has got (free text).",
        "schema": {"type": "string", "maxLength": 200},
    },
    "Expires": {
        "description": "Bulk export: when the export and its files are deleted (an HTTP date).",
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored response of an earlier request with the "
        "same Idempotency-Key (nothing new was created).",
        "schema": {"type": "string", "enum": ["true"]},
    },
}
"""Every response header of the service, as the OpenAPI document declares it."""


def header(name: str, *, required: bool = False) -> dict[str, Any]:
    return RESPONSE_HEADERS[name] | ({"required": True} if required else {})


def with_headers(*required: str, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """A success response's headers, for ``responses={200: with_headers("ETag")}``."""
    return {
        "headers": {name: header(name, required=True) for name in required}
        | {name: header(name) for name in optional}
    }


def created(model: BaseModel, headers: dict[str, str]) -> Response:
    """201 with the model's JSON, serialized once by pydantic-core, and ``headers`` (at least
    the ``Location`` of what was created: every 201 names it).

    The route still declares its response model (for OpenAPI); returning the body ready-made
    spares the second validation FastAPI would run on a value we built ourselves.
    """
    return Response(
        model.model_dump_json(), status_code=201, media_type="application/json", headers=headers
    )


CreatedHeaders = Callable[[dict[str, Any]], dict[str, str]]
"""The headers of a 201 (``Location``, maybe ``ETag``) from the created resource's JSON."""


MANUAL_BODIES: dict[str, type[BaseModel]] = {}
"""Request bodies that a route parses itself (see :func:`json_body`); app.py adds their
schemas to the OpenAPI components."""

DOCUMENTED_SCHEMAS: dict[str, dict[str, Any]] = {}
"""JSON Schemas a route documents without a model of its own (kap_outcomes.contract adds
them to the OpenAPI components)."""


def json_request_body(model: type[BaseModel], *, path_ids: Sequence[str] = ()) -> dict[str, Any]:
    """``openapi_extra`` for a creating route that parses ``model``, reads its Idempotency-Key
    (and the id path parameters ``path_ids``, see :func:`path_id`) itself, and needs a bearer
    token."""
    MANUAL_BODIES[model.__name__] = model
    return {
        "security": [{"bearerAuth": []}],
        "parameters": [*(path_id_parameter(n) for n in path_ids), IDEMPOTENCY_KEY_PARAMETER],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        },
    }


async def json_body(request: Request, model: type[M]) -> M:
    """Parse and validate a JSON body in one pass of pydantic-core.

    For the ingest route: FastAPI's own body handling parses with the standard library and
    then validates; this does both in Rust, after the caller has authenticated the request,
    and reports problems exactly like the app's validation handler (JSON Pointers).
    """
    body = await request.body()
    if not body:
        raise invalid([FieldProblem(detail="a JSON body is required", pointer="")])
    if not is_json_media_type(request.headers.get("content-type", "")):
        raise unsupported_media_type()
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_input=False)]
        raise invalid(problems_from_errors(errors)) from None


RETENTION_HOURS = int(RETENTION.total_seconds() // 3600)
IDEMPOTENCY_KEY_DESCRIPTION = (
    "Makes a create safe to retry: the same key with the same body replays the first "
    "response (header `Idempotent-Replayed: true`); with a different body it is a 422; while "
    f"the first is still in flight, a 409. Keys belong to the token and are kept "
    f"{RETENTION_HOURS} hours. 1-255 visible ASCII characters (a fresh UUID per request)."
)
IDEMPOTENCY_KEY_PATTERN = "^[!-~]{1,255}$"
IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": IDEMPOTENCY_KEY_DESCRIPTION,
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": IDEMPOTENCY_KEY_PATTERN,
    },
}
"""For a route that reads the header itself (the ingest route): FastAPI's own header
parameter handling cost a tenth of its throughput."""

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description=IDEMPOTENCY_KEY_DESCRIPTION,
    ),
]


def outcome_response(outcome: Outcome, created_headers: CreatedHeaders) -> Response:
    """The response of an idempotent create; a replay says so in ``Idempotent-Replayed`` and
    names the same ``Location`` as the first response."""
    headers = created_headers(orjson.loads(outcome.body))
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        outcome.body,
        status_code=outcome.status_code,
        media_type="application/json",
        headers=headers,
    )


async def create_once(
    request: Request,
    *,
    principal: Principal,
    data: BaseModel,
    key: str | None,
    create: Callable[[Connection], BaseModel],
    created_headers: CreatedHeaders,
) -> Response:
    """A creating POST, idempotent under ``Idempotency-Key`` (see idempotency.service)."""
    db: Database = request.app.state.db
    return outcome_response(
        await db.write(
            idempotent(
                create,
                principal=principal,
                key=check_key(key),
                fingerprint=fingerprint(request.method, request.url.path, data),
            )
        ),
        created_headers,
    )
