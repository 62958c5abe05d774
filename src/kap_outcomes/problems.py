"""The one renderer of error answers, in both flavours.

An error (:class:`~kap_outcomes.errors.DomainError`) is answered as RFC 9457
``application/problem+json``, except under ``/fhir/``, where it is an ``OperationOutcome``
(:mod:`kap_outcomes.fhir.outcome`). Everything that answers an error calls this module: the
app's exception handlers (:mod:`kap_outcomes.error_handlers`), the ASGI layers that refuse a
request before any route (``edge``, ``middleware``: :func:`send_problem`) and ``/readyz``
(:func:`response`).
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from fastapi.responses import Response
from starlette.types import Send

from kap_outcomes.errors import DomainError
from kap_outcomes.fhir.outcome import FHIR_MEDIA_TYPE, is_fhir_path, outcome_for

PROBLEM_MEDIA_TYPE = "application/problem+json"

CLIENT_CLOSED_REQUEST = 499
"""The access log's status of a request whose client went away before it was answered (the
number reverse proxies use for it); no answer is sent."""


def render(error: DomainError, path: str) -> tuple[bytes, str]:
    """The body and media type of the answer to ``error`` on ``path``."""
    if is_fhir_path(path):  # FHIR routes answer every error with an OperationOutcome
        return orjson.dumps(outcome_for(error.status, error.detail, error)), FHIR_MEDIA_TYPE
    return orjson.dumps(error.body(path)), PROBLEM_MEDIA_TYPE


def response(error: DomainError, path: str) -> Response:
    """The answer to ``error`` as a response (exception handlers, routes)."""
    body, media_type = render(error, path)
    return Response(
        body, status_code=error.status, headers=error.headers or None, media_type=media_type
    )


async def send_problem(
    send: Send,
    error: DomainError,
    path: str,
    extra_headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """The answer to ``error`` sent from an ASGI layer (before any route runs)."""
    body, media_type = render(error, path)
    await send_body(
        send,
        error.status,
        body,
        media_type,
        [*((k.lower().encode(), v.encode()) for k, v in error.headers.items()), *extra_headers],
    )


async def send_body(
    send: Send,
    status: int,
    body: bytes,
    media_type: str,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """An error body already rendered (an OperationOutcome of several issues)."""
    start = [(b"content-type", media_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*start, *headers]})
    await send({"type": "http.response.body", "body": body})
