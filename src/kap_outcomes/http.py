"""Shared HTTP vocabulary for routers: path parameters and documented error responses."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query, Request
from pydantic import BaseModel, StringConstraints, TypeAdapter

from kap_outcomes.config import Settings
from kap_outcomes.idempotency.service import RETENTION
from kap_outcomes.links import FHIR_PATH, public_base
from kap_outcomes.patterns import FREE_TEXT_PATTERN as FREE_TEXT_PATTERN
from kap_outcomes.patterns import ID_PATTERN as ID_PATTERN
from kap_outcomes.problems import PROBLEM_MEDIA_TYPE as PROBLEM_MEDIA_TYPE

# the page size and cursor of every listing (the cursor codec is pagination.py's)
Limit = Annotated[int, Query(ge=1, le=500, description="Page size (default 50, max 500).")]
Cursor = Annotated[
    str | None, Query(max_length=256, description="Opaque cursor from a previous page.")
]


def settings_of(request: Request) -> Settings:
    """The app's settings (``create_app`` keeps them on ``app.state``)."""
    settings: Settings = request.app.state.settings
    return settings


def fhir_base(request: Request) -> str:
    """``<KAP_PUBLIC_BASE_URL>/fhir/R4``, whatever host the request named."""
    return public_base(settings_of(request)) + FHIR_PATH


ResourceId = Annotated[str, Path(min_length=1, max_length=36, pattern=ID_PATTERN)]

RESOURCE_ID_TEXT = TypeAdapter(
    Annotated[str, StringConstraints(min_length=1, max_length=36, pattern=ID_PATTERN)]
)
"""The ``ResourceId`` rule (same errors), for a helper that reads path parameters itself."""


def path_id_parameter(name: str) -> dict[str, Any]:
    """The OpenAPI description of an id path parameter read by a route's create helper
    (``kap_outcomes.creating``), as FastAPI would write it for a ``ResourceId``."""
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


MANUAL_BODIES: dict[str, type[BaseModel]] = {}
"""Request bodies that a route parses itself (``kap_outcomes.creating``); the contract adds
their schemas to the OpenAPI components."""

DOCUMENTED_SCHEMAS: dict[str, dict[str, Any]] = {}
"""JSON Schemas a route documents without a model of its own (kap_outcomes.contract adds
them to the OpenAPI components)."""


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
"""Documented by every create that takes the header (``kap_outcomes.creating`` reads it:
FastAPI's own header parameter handling cost the ingest route a tenth of its throughput)."""
