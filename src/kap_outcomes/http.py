"""Shared HTTP vocabulary for routers: path parameters and documented error responses."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from fastapi.responses import Response
from pydantic import BaseModel

ID_PATTERN = r"^[A-Za-z0-9\-]+$"
"""What an id of this service looks like (UUIDs); anything else cannot name a row."""

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
    403: _problem("The token's role may not do this"),
    404: _problem("Not found in the caller's organisation"),
    422: _problem("The request is not valid; `errors` points at each problem"),
    503: _problem("The database is unreachable; retry after `Retry-After` seconds"),
}


def created(model: BaseModel) -> Response:
    """201 with the model's JSON, serialized once by pydantic-core.

    The route still declares its response model (for OpenAPI); returning the body ready-made
    spares the second validation FastAPI would run on a value we built ourselves.
    """
    return Response(model.model_dump_json(), status_code=201, media_type="application/json")
