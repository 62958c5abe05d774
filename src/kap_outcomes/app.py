"""The application factory: routers, error handlers, middleware."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from kap_outcomes import __version__
from kap_outcomes.alerts.router import router as alerts_router
from kap_outcomes.assessments.router import router as assessments_router
from kap_outcomes.care.router import router as care_router
from kap_outcomes.caseload.router import router as caseload_router
from kap_outcomes.config import Settings, get_settings
from kap_outcomes.db import Database, make_engine
from kap_outcomes.errors import DomainError, FieldProblem, problem_body
from kap_outcomes.health import router as health_router
from kap_outcomes.patients.router import router as patients_router
from kap_outcomes.policy.router import router as policy_router
from kap_outcomes.signals.router import router as signals_router

log = logging.getLogger("kap_outcomes")


class ProblemResponse(Response):
    media_type = "application/problem+json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _pointer(loc: tuple[int | str, ...]) -> FieldProblem:
    where, *rest = loc if loc else ("body",)
    path = "".join(f"/{str(p).replace('~', '~0').replace('/', '~1')}" for p in rest)
    if where == "body":
        return FieldProblem(detail="", pointer=path)
    return FieldProblem(detail="", parameter=str(rest[0]) if rest else str(where))


def _validation_problems(exc: RequestValidationError) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        kind = err.get("type", "")
        if kind == "json_invalid":
            problems.append(FieldProblem(detail="malformed JSON", pointer=""))
            continue
        if kind == "missing" and loc == ("body",):
            problems.append(FieldProblem(detail="a JSON body is required", pointer=""))
            continue
        base = _pointer(loc)
        # The message only; never the rejected value (it may be clinical data).
        problems.append(
            FieldProblem(
                detail=str(err.get("msg", "invalid")),
                pointer=base.pointer,
                parameter=base.parameter,
            )
        )
    return problems


def _operation_id(route: APIRoute) -> str:
    return route.name


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    db = Database(
        make_engine(
            settings.database_url,
            busy_timeout_ms=settings.sqlite_busy_timeout_ms,
            pool_size=settings.db_pool_size,
            pool_timeout_s=settings.db_pool_timeout_s,
        )
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        db.dispose()

    app = FastAPI(
        title="kap-outcomes",
        version=__version__,
        summary="Measurement-based care for ketamine-assisted psychotherapy.",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.db = db
    app.state.settings = settings

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        return ProblemResponse(
            exc.body(request.url.path), status_code=exc.status, headers=exc.headers or None
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        body = problem_body(
            status=422,
            slug="validation",
            title="Validation failed",
            detail="The request is not valid.",
            instance=request.url.path,
            errors=_validation_problems(exc),
        )
        return ProblemResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "Not found", 405: "Method not allowed"}
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
        health_router,
    ):
        app.include_router(router)
    return app
