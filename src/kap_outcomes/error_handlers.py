"""The app's exception handlers: every error a route raises answers through
:mod:`kap_outcomes.problems` (problem+json, or an OperationOutcome under /fhir/).

Domain errors, FastAPI's validation errors, Starlette's HTTP errors (404, 405…) and unexpected
exceptions. An unexpected exception is logged as one line with its type only, never with
request data.
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match
from starlette.types import Scope

from kap_outcomes.contract import api_routes
from kap_outcomes.errors import DomainError, invalid, problems_from_errors
from kap_outcomes.fhir.outcome import FHIR_MEDIA_TYPE, is_fhir_path, outcome_for_validation
from kap_outcomes.problems import CLIENT_CLOSED_REQUEST, response

log = logging.getLogger("kap_outcomes")

_UNPARSABLE_BODY = "There was an error parsing the body"
"""FastAPI's 400 for a body it cannot decode (not UTF-8): answered as the 422 of any other
malformed JSON."""

_HTTP_TITLES = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    413: "Content too large",
    415: "Unsupported media type",
}


def install(app: FastAPI) -> None:
    """Every error the app raises answers through :func:`kap_outcomes.problems.render`."""
    app.add_exception_handler(DomainError, _domain)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _crash)


async def _domain(request: Request, exc: DomainError) -> Response:
    return response(exc, request.url.path)


async def _invalid(request: Request, exc: RequestValidationError) -> Response:
    if is_fhir_path(request.url.path):
        status, outcome = outcome_for_validation(exc.errors())
        return Response(orjson.dumps(outcome), status_code=status, media_type=FHIR_MEDIA_TYPE)
    return response(invalid(problems_from_errors(exc.errors())), request.url.path)


async def _http(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code == 400 and exc.detail == _UNPARSABLE_BODY:
        return await _invalid(request, _malformed_json())
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # every method the path takes, whichever route has it
        headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
    not_found = exc.status_code == 404
    error = DomainError(
        detail="No such resource." if not_found else str(exc.detail),
        status=exc.status_code,
        slug="not-found" if not_found else "http-error",
        title=_HTTP_TITLES.get(exc.status_code, "HTTP error"),
        headers=headers,
    )
    return response(error, request.url.path)


async def _crash(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ClientDisconnect):  # the client left mid-body: nobody to answer
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    log.error(
        "unhandled error on %s %s: %s",
        request.method,
        request.scope.get("route"),
        type(exc).__name__,
    )
    path = request.url.path
    error = DomainError(
        detail="Something went wrong on our side."
        if is_fhir_path(path)
        else "Something went wrong on our side; nothing about it is shown here.",
        status=500,
        slug="internal",
        title="Internal error",
    )
    return response(error, path)


def _malformed_json() -> RequestValidationError:
    return RequestValidationError([{"type": "json_invalid", "loc": ("body",), "msg": "invalid"}])


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """The methods some route takes at this path (the ``Allow`` header of a 405)."""
    methods: set[str] = set()
    for route in api_routes(app.router.routes):
        if route.matches(scope)[0] is not Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)
