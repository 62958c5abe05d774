"""Domain errors and their one rendering as RFC 9457 ``application/problem+json``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

PROBLEM_BASE = "https://kap-outcomes.dev/problems/"


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One validation problem: a JSON Pointer into the body, or a named parameter."""

    detail: str
    pointer: str | None = None
    parameter: str | None = None

    def as_dict(self) -> dict[str, str]:
        out: dict[str, str] = {"detail": self.detail}
        if self.pointer is not None:
            out["pointer"] = self.pointer
        if self.parameter is not None:
            out["parameter"] = self.parameter
        return out


@dataclass
class DomainError(Exception):
    """Base of every error a service raises; rendered once by the app's handler."""

    detail: str = ""
    status: int = 400
    slug: str = "bad-request"
    title: str = ""
    """Short and the same for every problem of its kind; by default the slug in words."""
    errors: list[FieldProblem] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)
    """Extension members of the problem document (RFC 9457 3.2), e.g. what it conflicts with."""

    def __post_init__(self) -> None:
        if not self.title:
            self.title = self.slug.replace("-", " ").capitalize()

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"

    def body(self, instance: str) -> dict[str, Any]:
        """The problem document (RFC 9457): its extension members, then the standard ones."""
        body: dict[str, Any] = {
            **self.extensions,
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        return body


def not_found(what: str) -> DomainError:
    return DomainError(detail=f"{what} not found", status=404, slug="not-found")


def conflict(detail: str) -> DomainError:
    return DomainError(detail=detail, status=409, slug="conflict")


def invalid(errors: list[FieldProblem], detail: str = "The request is not valid.") -> DomainError:
    return DomainError(
        detail=detail, status=422, slug="validation", title="Validation failed", errors=errors
    )


def unauthorized(detail: str = "A valid bearer token is required.") -> DomainError:
    return DomainError(
        detail=detail,
        status=401,
        slug="unauthorized",
        headers={"WWW-Authenticate": 'Bearer realm="kap-outcomes"'},
    )


def forbidden(detail: str = "This role may not do that.") -> DomainError:
    return DomainError(detail=detail, status=403, slug="forbidden")


def unavailable(detail: str = "The database is not reachable; retry shortly.") -> DomainError:
    return DomainError(
        detail=detail,
        status=503,
        slug="unavailable",
        title="Service unavailable",
        headers={"Retry-After": "2"},
    )


def too_many_requests(retry_after: int, detail: str) -> DomainError:
    """A 429: a budget is spent; ``Retry-After`` says when to try again (seconds)."""
    return DomainError(
        detail=detail,
        status=429,
        slug="too-many-requests",
        headers={"Retry-After": str(retry_after)},
    )


def unsupported_media_type() -> DomainError:
    return DomainError(
        detail="Send the body as application/json.", status=415, slug="unsupported-media-type"
    )


def _escape(part: int | str) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def problems_from_errors(errors: Iterable[Mapping[str, Any]]) -> list[FieldProblem]:
    """Pydantic/FastAPI validation errors as problems: a JSON Pointer into the body, or the
    name of a query, path or header parameter. Only the message, never the rejected value
    (it may be clinical data). ``loc`` starts with where the value came from (``body``…)."""
    problems: list[FieldProblem] = []
    for err in errors:
        where, *rest = tuple(err.get("loc", ())) or ("body",)
        kind = err.get("type", "")
        if kind == "json_invalid":
            problems.append(FieldProblem(detail="malformed JSON", pointer=""))
        elif kind == "missing" and where == "body" and not rest:
            problems.append(FieldProblem(detail="a JSON body is required", pointer=""))
        elif where == "body":
            pointer = "".join(f"/{_escape(p)}" for p in rest)
            problems.append(FieldProblem(detail=str(err.get("msg", "invalid")), pointer=pointer))
        else:
            name = str(rest[0]) if rest else str(where)
            problems.append(FieldProblem(detail=str(err.get("msg", "invalid")), parameter=name))
    return problems
