"""Shared HTTP vocabulary for routers: path parameters and documented error responses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Header, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection

from kap_outcomes.auth.service import Principal
from kap_outcomes.db import Database
from kap_outcomes.errors import (
    FieldProblem,
    invalid,
    problems_from_errors,
    unsupported_media_type,
)
from kap_outcomes.idempotency.service import Outcome, check_key, fingerprint, idempotent
from kap_outcomes.middleware import is_json_media_type

M = TypeVar("M", bound=BaseModel)

ID_PATTERN = r"^[A-Za-z0-9\-]+$"
"""What an id of this service looks like (UUIDs); anything else cannot name a row."""

FREE_TEXT_PATTERN = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F\u202A-\u202E\u2066-\u2069]*$"
"""Free text (labels, notes, reasons): any printable text, tabs and line breaks, but no
control characters and no bidirectional overrides (which can make a note read differently
from what is stored)."""

ResourceId = Annotated[str, Path(min_length=1, max_length=36, pattern=ID_PATTERN)]


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


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "model": Problem,
        "content": {"application/problem+json": {}},
    }


PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: _problem("Missing, unknown, expired or revoked token"),
    415: _problem("The body is not application/json"),
    403: _problem("The token's role may not do this"),
    404: _problem("Not found in the caller's organisation"),
    409: _problem("Conflicts with what is stored (a duplicate, or a request still in flight)"),
    412: _problem("If-Match names a version that is no longer current"),
    428: _problem("If-Match with an ETag is required to change this resource (* names none)"),
    422: _problem("The request is not valid; `errors` points at each problem"),
    503: _problem("The database is unreachable; retry after `Retry-After` seconds"),
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


def json_request_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a creating route that parses ``model`` and reads its
    Idempotency-Key itself, and needs a bearer token."""
    MANUAL_BODIES[model.__name__] = model
    return {
        "security": [{"bearerAuth": []}],
        "parameters": [IDEMPOTENCY_KEY_PARAMETER],
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


IDEMPOTENCY_KEY_DESCRIPTION = (
    "Makes a create safe to retry: the same key with the same body replays the first "
    "response; with a different body it is a 422. Kept at least 24 hours per token."
)
IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": IDEMPOTENCY_KEY_DESCRIPTION,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
"""For a route that reads the header itself (the ingest route): FastAPI's own header
parameter handling cost a tenth of its throughput."""

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
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
