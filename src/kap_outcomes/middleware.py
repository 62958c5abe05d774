"""ASGI middleware of the app (pure ASGI: no per-request objects on the hot path)."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

import anyio
import anyio.to_thread
import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kap_outcomes import json_bodies
from kap_outcomes.errors import DomainError, FieldProblem, invalid, unsupported_media_type
from kap_outcomes.fhir.outcome import FHIR_MEDIA_TYPE, is_fhir_path, operation_outcome
from kap_outcomes.problems import send_body, send_problem

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
FORM_PATH = "/oauth/token"
DASHBOARD_FORMS = re.compile(
    r"^/(signin|signout|alerts/[A-Za-z0-9\-]{1,36}/(acknowledge|resolve))$"
)
"""The dashboard's HTML forms (urlencoded, read by the dashboard itself)."""


def reads_own_form(path: str) -> bool:
    """A route that reads a urlencoded form itself: no JSON rule applies to its body."""
    return path == FORM_PATH or DASHBOARD_FORMS.match(path) is not None


def content_too_large(limit: int) -> DomainError:
    return DomainError(
        detail=f"The body is larger than {limit} bytes.",
        status=413,
        slug="content-too-large",
    )


class _BodyTooLarge(Exception):
    pass


INLINE_CHECK_BYTES = 8 * 1024
"""A JSON body up to this size is checked on the event loop (microseconds); a larger one in a
worker thread, at most :data:`PARALLEL_CHECKS` at a time, so no body stalls the other requests
(nor takes the worker threads the database calls need)."""
PARALLEL_CHECKS = 2


def _body_headers(scope: Scope) -> tuple[str, int | None, bool]:
    """Content-Type, Content-Length (None when absent or not a sane number) and whether the
    body is chunked, from the raw headers."""
    content_type = ""
    declared: int | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"content-length":
            digits = value.strip()  # judged as text first: no 5,000-digit int()
            declared = int(digits) if digits.isdigit() and len(digits) <= 18 else None
        elif name == b"transfer-encoding":
            chunked = True
    return content_type, declared, chunked


class RequestBodyRules:
    """What every request body must be, before any route reads it.

    - JSON (``application/json`` or any ``application/*+json``) when there is a body, else
      415; bodiless POSTs pass. Exempt: :data:`FORM_PATH`, which reads its form itself.
    - At most ``max_body_bytes``, else 413: at once when Content-Length says so, otherwise
      as soon as the bytes read go past it (a chunked body), whatever the route then does.
    - A JSON body is read whole and checked by :func:`json_bodies.check` before the route
      sees it: a repeated key, a number outside the grammar, nesting or a count of values
      beyond the bounds is a 422 with a pointer to each place.
    Each answers with a problem document (an OperationOutcome under /fhir/).
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._checks = anyio.CapacityLimiter(PARALLEL_CHECKS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        content_type, declared, chunked = _body_headers(scope)
        if (
            (chunked or (declared or 0) > 0)
            and not json_bodies.is_json_media_type(content_type)
            and not reads_own_form(scope["path"])
        ):
            await send_problem(send, unsupported_media_type(), scope["path"])
            return
        if declared is not None and declared > self.max_body_bytes:
            await send_problem(send, content_too_large(self.max_body_bytes), scope["path"])
            return
        if json_bodies.is_json_media_type(content_type) and not reads_own_form(scope["path"]):
            await self._checked_json(scope, receive, send)
            return
        await self._limited(scope, receive, send)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A body that is not checked as JSON: handed to the route as it comes, cut off with a
        413 as soon as the bytes read go past the limit."""
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
                await send_problem(send, content_too_large(self.max_body_bytes), scope["path"])

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            if not replaced:
                await send_problem(send, content_too_large(self.max_body_bytes), scope["path"])

    async def _checked_json(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the whole body (within the limit), check it, then hand it to the route."""
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await send_problem(send, content_too_large(self.max_body_bytes), scope["path"])
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if len(body) <= INLINE_CHECK_BYTES:
            problems = json_bodies.check(body)
        else:
            problems = await anyio.to_thread.run_sync(json_bodies.check, body, limiter=self._checks)
        if problems:
            await _send_json_problems(send, problems, scope["path"], body)
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # after the body: the disconnect, when it comes
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def fhir_path_of(pointer: str, resource_type: str) -> str:
    """A JSON Pointer into a resource as a FHIRPath: ``/item/0/linkId`` →
    ``QuestionnaireResponse.item[0].linkId``."""
    path = resource_type
    for part in pointer.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        path += f"[{part}]" if part.isdigit() else f".{part}"
    return path


_RESOURCE_TYPE = re.compile(rb'"resourceType"\s*:\s*"([A-Za-z]{1,64})"')
_FHIR_ISSUE = {
    "duplicate-key": "structure",
    "number": "value",
    "depth": "too-costly",
    "nul": "value",
}


async def _send_json_problems(
    send: Send, problems: list[json_bodies.JsonProblem], path: str, body: bytes
) -> None:
    if not is_fhir_path(path):
        error = invalid([FieldProblem(pointer=p.pointer, detail=p.detail) for p in problems])
        await send_problem(send, error, path)
        return
    named = _RESOURCE_TYPE.search(body)
    resource_type = named.group(1).decode() if named else "Resource"
    outcome = operation_outcome(
        {
            "severity": "error",
            "code": _FHIR_ISSUE.get(p.kind, "too-costly"),
            "diagnostics": p.detail,
            "expression": [fhir_path_of(p.pointer, resource_type)],
        }
        for p in problems
    )
    await send_body(send, 422, orjson.dumps(outcome), FHIR_MEDIA_TYPE)


def _nul_parameter(query_string: bytes) -> str | None:
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if json_bodies.NUL in name or json_bodies.NUL in value:
            return name.replace(json_bodies.NUL, "")[:40]
    return None


class NoNulText:
    """One rule for all text a client sends, its query part: no NUL character (U+0000).

    PostgreSQL cannot store a NUL in text or JSONB (SQLite can), so without this rule the same
    request would be stored on one database and fail on the other. A query parameter holding
    one (``%00``) is refused naming the parameter: a 422 problem on /v1, a 400 OperationOutcome
    on FHIR (as any bad search parameter). In a JSON body the same rule is
    :func:`json_bodies.check`'s (a 422 pointing at it).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query = scope.get("query_string", b"")
            if b"%00" in query and (name := _nul_parameter(query)) is not None:
                problem = invalid([FieldProblem(detail=json_bodies.NUL_DETAIL, parameter=name)])
                if is_fhir_path(scope["path"]):
                    problem.status = 400
                await send_problem(send, problem, scope["path"])
                return
        await self.app(scope, receive, send)
