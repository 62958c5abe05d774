"""The application factory: routers, error handlers, middleware."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from kap_outcomes import __version__, api_docs
from kap_outcomes.alerts.router import router as alerts_router
from kap_outcomes.assessments.router import router as assessments_router
from kap_outcomes.audit import service as audit_service
from kap_outcomes.audit.router import router as audit_router
from kap_outcomes.auth.dependencies import BEARER_SCHEME, current_principal
from kap_outcomes.auth.router import router as auth_router
from kap_outcomes.care.router import router as care_router
from kap_outcomes.caseload.router import router as caseload_router
from kap_outcomes.config import Settings, get_settings
from kap_outcomes.db import Database, make_engine
from kap_outcomes.edge import Edge, Limits, RateWindow, cors_options
from kap_outcomes.errors import DomainError, problem_body, problems_from_errors
from kap_outcomes.fhir.outcome import (
    FHIR_MEDIA_TYPE,
    is_fhir_path,
    outcome_for,
    outcome_for_validation,
)
from kap_outcomes.fhir.router import router as fhir_router
from kap_outcomes.health import router as health_router
from kap_outcomes.http import MANUAL_BODIES
from kap_outcomes.links import require_public_base_url
from kap_outcomes.middleware import RequestBodyRules
from kap_outcomes.patients.router import router as patients_router
from kap_outcomes.policy.router import router as policy_router
from kap_outcomes.query_rules import only_declared_query
from kap_outcomes.reports.router import router as reports_router
from kap_outcomes.signals.router import router as signals_router
from kap_outcomes.smart.router import clients_router, oauth_router
from kap_outcomes.smart.tokens import TokenIssuer

log = logging.getLogger("kap_outcomes")


class ProblemResponse(Response):
    media_type = "application/problem+json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class OutcomeResponse(ProblemResponse):
    """An error on a FHIR route: an OperationOutcome (never problem+json)."""

    media_type = FHIR_MEDIA_TYPE


def _operation_id(route: APIRoute) -> str:
    return route.name


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    token_issuer = TokenIssuer.from_settings(settings)  # refuses production without a key
    require_public_base_url(settings)  # links come from configuration, never from Host
    db = Database(
        make_engine(
            settings.database_url,
            busy_timeout_ms=settings.sqlite_busy_timeout_ms,
            pool_size=settings.db_pool_size,
            pool_timeout_s=settings.db_pool_timeout_s,
        ),
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        freeze_startup_objects()
        yield
        db.dispose()

    app = FastAPI(
        title="kap-outcomes",
        version=__version__,
        summary="Measurement-based care for ketamine-assisted psychotherapy.",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        docs_url=None,  # served by api_docs, from the package rather than a CDN
        redoc_url=None,
        redirect_slashes=False,  # its redirects would echo the client's Host header
        dependencies=[Depends(only_declared_query)],  # /v1: unknown or repeated → 422
    )
    api_docs.install(app)
    app.add_middleware(RequestBodyRules, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(Edge, limits=Limits(failed_auth_per_minute=settings.failed_auth_per_minute))
    if settings.cors_origins:  # outermost: the edge's own answers (429) are readable too
        app.add_middleware(CORSMiddleware, **cors_options(settings.cors_origins))
    app.state.token_rate = (
        RateWindow(settings.rate_limit_per_minute, 60.0) if settings.rate_limit_per_minute else None
    )
    app.state.db = db
    db.wrap_write = audit_service.in_transaction  # successful writes audit in-transaction
    app.state.settings = settings
    app.state.token_issuer = token_issuer

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        if is_fhir_path(request.url.path):
            return OutcomeResponse(
                outcome_for(exc.status, exc.detail, exc),
                status_code=exc.status,
                headers=exc.headers or None,
            )
        return ProblemResponse(
            exc.body(request.url.path), status_code=exc.status, headers=exc.headers or None
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if is_fhir_path(request.url.path):
            status, outcome = outcome_for_validation(exc.errors())
            return OutcomeResponse(outcome, status_code=status)
        body = problem_body(
            status=422,
            slug="validation",
            title="Validation failed",
            detail="The request is not valid.",
            instance=request.url.path,
            errors=problems_from_errors(exc.errors()),
        )
        return ProblemResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {
            400: "Bad request",
            404: "Not found",
            405: "Method not allowed",
            413: "Content too large",
            415: "Unsupported media type",
        }
        if is_fhir_path(request.url.path):
            detail = str(exc.detail) if exc.status_code != 404 else "No such resource."
            return OutcomeResponse(
                outcome_for(exc.status_code, detail), status_code=exc.status_code
            )
        body = problem_body(
            status=exc.status_code,
            slug="not-found" if exc.status_code == 404 else "http-error",
            title=titles.get(exc.status_code, "HTTP error"),
            detail=str(exc.detail) if exc.status_code != 404 else "No such resource.",
            instance=request.url.path,
        )
        return ProblemResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.error(
            "unhandled error on %s %s: %s",
            request.method,
            request.scope.get("route"),
            type(exc).__name__,
        )
        if is_fhir_path(request.url.path):
            return OutcomeResponse(
                outcome_for(500, "Something went wrong on our side."), status_code=500
            )
        body = problem_body(
            status=500,
            slug="internal",
            title="Internal error",
            detail="Something went wrong on our side; nothing about it is shown here.",
            instance=request.url.path,
        )
        return ProblemResponse(body, status_code=500)

    # Routes match in order: the ingest route, the busiest by far, is tried first.
    for router in (
        assessments_router,
        patients_router,
        care_router,
        alerts_router,
        policy_router,
        signals_router,
        caseload_router,
        reports_router,
        clients_router,
        oauth_router,
        auth_router,
        audit_router,
        health_router,
        fhir_router,
    ):
        app.include_router(router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def freeze_startup_objects() -> None:
    """Move everything built at start-up out of the cyclic garbage collector's sight.

    The app, its routes, the SQLAlchemy metadata and the pydantic validators live as long as
    the process; without this every collection scans them again, and the ingest profile
    showed one request in eight paying for it (``gc.freeze``, as large Python services do).
    """
    gc.collect()
    gc.freeze()


def _api_routes(routes: Sequence[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (included := getattr(route, "original_router", None)) is not None:
            yield from _api_routes(included.routes)


def _needs_principal(dependant: Dependant) -> bool:
    return dependant.call is current_principal or any(
        _needs_principal(sub) for sub in dependant.dependencies
    )


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated document, plus the bearer scheme on every route that needs a token."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            routes=app.routes,
        )
        components = schema.setdefault("components", {})
        components["securitySchemes"] = {"bearerAuth": BEARER_SCHEME}
        schemas = components.setdefault("schemas", {})
        for name, model in MANUAL_BODIES.items():
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for def_name, definition in body.pop("$defs", {}).items():
                schemas.setdefault(def_name, definition)
            schemas[name] = body
        for route in _api_routes(app.routes):
            if _needs_principal(route.dependant):
                for method in route.methods or ():
                    operation = schema["paths"][route.path_format][method.lower()]
                    operation["security"] = [{"bearerAuth": []}]
        app.openapi_schema = schema
    return app.openapi_schema
