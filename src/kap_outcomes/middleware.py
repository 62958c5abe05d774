"""ASGI middleware of the app (pure ASGI: no per-request objects on the hot path)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kap_outcomes.errors import DomainError, FieldProblem, invalid, unsupported_media_type
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


NUL = "\x00"
NUL_DETAIL = "must not contain NUL characters (U+0000)"


def _escape(part: int | str) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def nul_pointer(document: Any) -> str | None:
    """The JSON Pointer of the first string (member name or value) holding a NUL, else None.

    Iterative: a document may nest as deep as the JSON parser allows."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        pointer, value = stack.pop()
        if isinstance(value, str):
            if NUL in value:
                return pointer
        elif isinstance(value, dict):
            for name, member in reversed(value.items()):
                if NUL in name:
                    return f"{pointer}/{_escape(name)}"
                stack.append((f"{pointer}/{_escape(name)}", member))
        elif isinstance(value, list):
            stack.extend((f"{pointer}/{i}", v) for i, v in reversed(list(enumerate(value))))
    return None


def _nul_parameter(query_string: bytes) -> str | None:
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if NUL in name or NUL in value:
            return name.replace(NUL, "")[:40]
    return None


class NoNulText:
    """One rule for all text a client sends: no NUL character (U+0000), anywhere.

    PostgreSQL cannot store a NUL in text or JSONB (SQLite can), so without this rule the same
    request would be stored on one database and fail on the other. A query parameter holding
    one (``%00``) is refused naming the parameter (422 on /v1, 400 on FHIR searches); a JSON
    body holding one (``\\u0000``, in a value or a member name) is a 422 pointing at it. The
    body is read whole first (the routes read it whole anyway; its size is already capped);
    only a body with the escape in it is parsed here.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        query = scope.get("query_string", b"")
        if b"%00" in query and (name := _nul_parameter(query)) is not None:
            problem = invalid([FieldProblem(detail=NUL_DETAIL, parameter=name)])
            if is_fhir_path(path):
                problem.status = 400
            await _send_problem(send, problem, path)
            return
        if scope["method"] not in _WITH_BODY or path == FORM_PATH:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        message = await receive()
        while message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
            message = await receive()
        if message["type"] != "http.request":  # the client went away
            await self.app(scope, _replay(message, receive), send)
            return
        body = b"".join(chunks)
        if b"\\u0000" in body:
            try:
                pointer = nul_pointer(orjson.loads(body))
            except orjson.JSONDecodeError:
                pointer = None  # the route answers malformed JSON itself
            if pointer is not None:
                await _send_problem(send, invalid([FieldProblem(NUL_DETAIL, pointer)]), path)
                return
        await self.app(scope, _replay({"type": "http.request", "body": body}, receive), send)


def _replay(message: Message, receive: Receive) -> Receive:
    pending = [message]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


async def _send_problem(send: Send, problem: DomainError, path: str) -> None:
    # FHIR routes answer every error with an OperationOutcome.
    media_type = b"application/problem+json"
    if is_fhir_path(path):
        body = orjson.dumps(outcome_for(problem.status, problem.detail, problem))
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
