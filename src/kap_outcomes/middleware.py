"""ASGI middleware of the app (pure ASGI: no per-request objects on the hot path)."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kap_outcomes.errors import DomainError, unsupported_media_type
from kap_outcomes.fhir.outcome import FHIR_MEDIA_TYPE, is_fhir_path, outcome_for

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
FORM_PATH = "/oauth/token"
"""The one route whose body is not JSON: OAuth 2.0 token requests are form-encoded."""


def is_json_media_type(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def content_too_large(limit: int) -> DomainError:
    return DomainError(
        detail=f"The body is larger than {limit} bytes.",
        status=413,
        slug="content-too-large",
        title="Content too large",
    )


class _BodyTooLarge(Exception):
    pass


class RequestBodyRules:
    """What every request body must be, before any route reads it.

    - JSON (``application/json`` or any ``application/*+json``) when there is a body, else
      415; bodiless POSTs pass. Exempt: :data:`FORM_PATH`, which reads its form itself.
    - At most ``max_body_bytes``, else 413: at once when Content-Length says so, otherwise
      as soon as the bytes read go past it (a chunked body), whatever the route then does.
    Both answer with a problem document.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        content_type = ""
        declared: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                declared = int(value) if value.strip().isdigit() else None
            elif name == b"transfer-encoding":
                chunked = True
        if (
            (chunked or (declared or 0) > 0)
            and not is_json_media_type(content_type)
            and scope["path"] != FORM_PATH
        ):
            await _send_problem(send, unsupported_media_type(), scope["path"])
            return
        if declared is not None and declared > self.max_body_bytes:
            await _send_problem(send, content_too_large(self.max_body_bytes), scope["path"])
            return

        received = 0
        too_large = False
        replaced = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal replaced
            if not too_large:
                await send(message)
            elif not replaced:  # whatever the route made of the error, the answer is a 413
                replaced = True
                await _send_problem(send, content_too_large(self.max_body_bytes), scope["path"])

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            if not replaced:
                await _send_problem(send, content_too_large(self.max_body_bytes), scope["path"])


async def _send_problem(send: Send, problem: DomainError, path: str) -> None:
    # FHIR routes answer every error with an OperationOutcome.
    media_type = b"application/problem+json"
    if is_fhir_path(path):
        body = orjson.dumps(outcome_for(problem.status, problem.detail))
        media_type = FHIR_MEDIA_TYPE.encode()
    else:
        body = orjson.dumps(problem.body(path))
    await send(
        {
            "type": "http.response.start",
            "status": problem.status,
            "headers": [
                (b"content-type", media_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
