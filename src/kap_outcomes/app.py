"""The application factory: routers, error handlers, middleware."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi

from kap_outcomes import __version__, api_docs, error_handlers
from kap_outcomes.alerts.router import router as alerts_router
from kap_outcomes.assessments.router import router as assessments_router
from kap_outcomes.audit import service as audit_service
from kap_outcomes.audit.router import router as audit_router
from kap_outcomes.auth.router import router as auth_router
from kap_outcomes.bulk.router import router as bulk_router
from kap_outcomes.care.router import router as care_router
from kap_outcomes.care.router import session_router
from kap_outcomes.caseload.router import router as caseload_router
from kap_outcomes.charts.router import router as charts_router
from kap_outcomes.config import Settings, get_settings
from kap_outcomes.contract import finish, operation_id
from kap_outcomes.dashboard import pages as dashboard_pages
from kap_outcomes.dashboard.router import router as dashboard_router
from kap_outcomes.db import Database, make_engine
from kap_outcomes.edge import Edge, Limits, cors_options
from kap_outcomes.events.router import router as events_router
from kap_outcomes.fhir.router import router as fhir_router
from kap_outcomes.health import router as health_router
from kap_outcomes.limiter import budgets
from kap_outcomes.metrics.router import router as metrics_router
from kap_outcomes.metrics.scrape import registry as metrics_registry
from kap_outcomes.middleware import NoNulText, RequestBodyRules
from kap_outcomes.organisation.router import router as organisation_router
from kap_outcomes.patients.router import router as patients_router
from kap_outcomes.policy.router import router as policy_router
from kap_outcomes.reports.router import router as reports_router
from kap_outcomes.serving import servable
from kap_outcomes.signals.router import router as signals_router
from kap_outcomes.smart.remote_keys import FetchRules, RemoteKeySets
from kap_outcomes.smart.router import clients_router, oauth_router
from kap_outcomes.webhooks.router import router as webhooks_router
from kap_outcomes.worker import EmbeddedWorker

log = logging.getLogger("kap_outcomes")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    token_issuer = servable(settings)
    db = Database(
        make_engine(
            settings.database_url,
            busy_timeout_ms=settings.sqlite_busy_timeout_ms,
            pool_size=settings.db_pool_size,
            pool_timeout_s=settings.db_pool_timeout_s,
        ),
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
    )

    shared_store, token_rate, failed_auth = budgets(
        redis_url=settings.redis_url.get_secret_value() if settings.redis_url else None,
        key_prefix=settings.redis_key_prefix,
        rate_per_minute=settings.rate_limit_per_minute,
        failed_auth_per_minute=settings.failed_auth_per_minute,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        freeze_startup_objects()
        worker = EmbeddedWorker(db, settings) if settings.worker_embedded else None
        if worker is not None:
            worker.start()
        yield
        if worker is not None:
            await worker.stop()
        if shared_store is not None:
            await shared_store.close()
        db.dispose()

    app = FastAPI(
        title="kap-outcomes",
        version=__version__,
        summary="Measurement-based care for ketamine-assisted psychotherapy.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        docs_url=None,  # served by api_docs, from the package rather than a CDN
        redoc_url=None,
        openapi_url="/openapi.json" if settings.serves_api_docs else None,
        redirect_slashes=False,  # its redirects would echo the client's Host header
    )
    if settings.serves_api_docs:  # KAP_API_DOCS; off in production unless asked for
        api_docs.install(app)
    app.add_middleware(NoNulText)  # a NUL in the query: 422 (bodies: RequestBodyRules)
    app.add_middleware(RequestBodyRules, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(
        Edge,
        limits=Limits(failures=failed_auth, trusted_proxies=tuple(settings.trusted_proxies)),
    )
    if settings.cors_origins:  # outermost: the edge's own answers (429) are readable too
        app.add_middleware(CORSMiddleware, **cors_options(settings.cors_origins))
    app.state.token_rate = token_rate
    app.state.metrics = metrics_registry(db)
    app.state.db = db
    db.wrap_write = audit_service.in_transaction  # successful writes audit in-transaction
    app.state.settings = settings
    app.state.token_issuer = token_issuer
    app.state.remote_keys = RemoteKeySets(FetchRules.from_settings(settings))

    error_handlers.install(app)  # every error answers as problem+json, or under /fhir/ in FHIR

    # Routes match in order: the ingest route, the busiest by far, is tried first.
    for router in (
        assessments_router,
        patients_router,
        care_router,
        session_router,
        alerts_router,
        policy_router,
        organisation_router,
        signals_router,
        charts_router,
        caseload_router,
        events_router,
        webhooks_router,
        reports_router,
        clients_router,
        oauth_router,
        auth_router,
        audit_router,
        health_router,
        bulk_router,  # before fhir_router: Patient/$export is not a Patient id
        fhir_router,
        dashboard_router,
    ):
        app.include_router(router)
    if settings.metrics_token is not None or settings.environment != "production":
        app.include_router(metrics_router)  # production without a token: not served
    dashboard_pages.install(app)  # its CSS and ES module, from the package
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    build_stack = app.build_middleware_stack
    app.build_middleware_stack = lambda: NoTracebacks(build_stack())  # type: ignore[method-assign]
    return app


class NoTracebacks:
    """The outermost layer: a crash leaves the process as one line, never a traceback.

    Starlette answers the 500 (``_crash`` logs the exception's type) and then re-raises, so
    that the server prints the traceback, with the exception's text: a database driver's
    message carries the values of the row that failed (``Key (external_id)=(…) already
    exists``), which are patient data. Here the exception ends once it has been answered.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with contextlib.suppress(Exception):  # answered with a 500, logged by type in _crash
            await self.app(scope, receive, send)


def freeze_startup_objects() -> None:
    """Move everything built at start-up out of the cyclic garbage collector's sight.

    The app, its routes, the SQLAlchemy metadata and the pydantic validators live as long as
    the process; without this every collection scans them again, and the ingest profile
    showed one request in eight paying for it (``gc.freeze``, as large Python services do).
    """
    gc.collect()
    gc.freeze()


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated document, finished by kap_outcomes.contract (errors, headers, security)."""
    if app.openapi_schema is None:
        app.openapi_schema = finish(
            get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            ),
            app.routes,
        )
    return app.openapi_schema
