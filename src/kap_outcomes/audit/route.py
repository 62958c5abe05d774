"""``AuditedRoute``: the route class of every router that touches patient data."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from kap_outcomes.audit.service import CURRENT, AuditScope, record
from kap_outcomes.db import Database
from kap_outcomes.errors import DomainError
from kap_outcomes.fhir.outcome import is_fhir_path, outcome_for_validation
from kap_outcomes.query_rules import DeclaredQueryRoute

log = logging.getLogger("kap_outcomes")


def _resource_type(path: str) -> str:
    static = [part for part in path.split("/") if part and not part.startswith("{")]
    return static[-1] if static else "-"


class _Result:
    """What a read answered, as far as the audit needs it (the patient it was about)."""

    def __init__(self, body: bytes) -> None:
        self.patient_id: Any = None
        try:
            data = orjson.loads(body) if body[:1] == b"{" else None
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            self.patient_id = data.get("patient_id")


class AuditedRoute(DeclaredQueryRoute):
    """Audits every request of the route (and, on /v1, refuses undeclared query parameters:
    :class:`DeclaredQueryRoute`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        method = next(iter(sorted(self.methods or {"GET"})))
        action = f"{method} {self.path_format}"
        resource_type = _resource_type(self.path_format)
        success_status = self.status_code or 200

        async def audited(request: Request) -> Response:
            scope = AuditScope(
                action=action,
                resource_type=resource_type,
                path_params={k: str(v) for k, v in request.path_params.items()},
                success_status=success_status,
                request_id=request.scope.get("state", {}).get("request_id"),
                write=method not in _READS,
            )
            token = CURRENT.set(scope)
            try:
                response = await handler(request)
            except (DomainError, HTTPException, RequestValidationError) as exc:
                status = getattr(exc, "status", None) or getattr(exc, "status_code", None)
                if isinstance(exc, RequestValidationError) and is_fhir_path(request.url.path):
                    status = outcome_for_validation(exc.errors())[0]  # FHIR: 400 or 422
                await _record_failure(request, scope, status if isinstance(status, int) else 422)
                raise
            except Exception:
                await _record_failure(request, scope, 500)
                raise
            finally:
                CURRENT.reset(token)
            if not scope.recorded:
                body = getattr(response, "body", b"")
                await _record(request, scope, response.status_code, _Result(bytes(body)))
            return response

        return audited


_READS = frozenset({"GET", "HEAD", "OPTIONS"})


async def _record_failure(request: Request, scope: AuditScope, status: int) -> None:
    """The one event of a request that failed. Recording it may fail too (the database is
    down): the request's own error is what the client gets, so that is not raised here."""
    if scope.recorded and not scope.in_transaction:
        return
    try:
        await _record(request, scope, status, None)
    except Exception as exc:
        log.warning("audit event of a failed request not recorded: %s", type(exc).__name__)


async def _record(request: Request, scope: AuditScope, status: int, result: Any) -> None:
    principal = getattr(request.state, "principal", None) or scope.principal
    if principal is None or status == 401:  # nobody to name: Edge throttles failed logins
        return
    scope.principal = principal
    db: Database = request.app.state.db
    token = CURRENT.set(None)  # its own transaction: not a unit of work to audit
    try:
        await db.write(partial(record, scope=scope, status=status, result=result))
    finally:
        CURRENT.reset(token)
