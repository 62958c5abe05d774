"""Errors on the FHIR routes: always an ``OperationOutcome`` (never problem+json).

The app's handlers call :func:`outcome_for` for any path under :data:`FHIR_PREFIX`, so domain
errors, authentication errors, FastAPI's own validation errors, 404/405, 413/415 and crashes
all answer in FHIR.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kap_outcomes.errors import DomainError, FieldProblem

FHIR_PREFIX = "/fhir/"
FHIR_MEDIA_TYPE = "application/fhir+json"

ISSUE_BY_STATUS: Mapping[int, str] = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "invalid",
    428: "required",
    429: "throttled",
    503: "transient",
}
"""The issue code when a route raised no more specific one (FHIR R4 IssueType)."""


def is_fhir_path(path: str) -> bool:
    return path.startswith(FHIR_PREFIX)


@dataclass
class FhirError(DomainError):
    """A domain error with a FHIR issue code (and, if known, the FHIRPath it is about)."""

    code: str = "invalid"
    expression: list[str] = field(default_factory=list)


def fhir_error(status: int, code: str, detail: str, expression: str | None = None) -> FhirError:
    return FhirError(
        detail=detail,
        status=status,
        slug=code,
        title=code,
        code=code,
        expression=[expression] if expression else [],
    )


def operation_outcome(issues: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


def _issue(code: str, diagnostics: str, expression: list[str] | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = expression
    return issue


def _problem_issue(code: str, problem: FieldProblem) -> dict[str, Any]:
    where = problem.parameter or (problem.pointer or "").lstrip("/").replace("/", ".")
    return _issue(code, problem.detail, [where] if where else None)


def outcome_for(status: int, detail: str, error: DomainError | None = None) -> dict[str, Any]:
    """The OperationOutcome of an error response."""
    code = ISSUE_BY_STATUS.get(status, "exception")
    if isinstance(error, FhirError):
        return operation_outcome([_issue(error.code, error.detail, error.expression)])
    if error is not None and error.errors:
        return operation_outcome(_problem_issue(code, p) for p in error.errors)
    return operation_outcome([_issue(code, detail)])


def outcome_for_validation(errors: Iterable[Mapping[str, Any]]) -> tuple[int, dict[str, Any]]:
    """FastAPI's own validation errors: a bad query or header is a 400, a bad body a 422."""
    issues: list[dict[str, Any]] = []
    status = 422
    for err in errors:
        loc = tuple(err.get("loc", ())) or ("body",)
        kind = str(err.get("type", ""))
        if loc[0] != "body":
            status = 400
        if kind == "json_invalid":
            code = "structure"
        elif kind == "missing":
            code = "required"
        else:
            code = "value"
        where = ".".join(str(p) for p in loc[1:]) or str(loc[0])
        issues.append(_issue(code, str(err.get("msg", "invalid")), [where]))
    return status, operation_outcome(issues or [_issue("invalid", "The request is not valid.")])
