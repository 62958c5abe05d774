"""Errors on the FHIR routes: always an ``OperationOutcome`` (never problem+json).

The app's handlers call :func:`outcome_for` for any path under :data:`FHIR_PREFIX`, so domain
errors, authentication errors, FastAPI's own validation errors, 404/405, 413/415 and crashes
all answer in FHIR.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kap_outcomes.errors import DomainError, FieldProblem, problems_from_errors

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


def unsupported_parameter(name: str, kind: str, where: str = "") -> FhirError:
    """A 400 for a parameter this server does not support: "this server does not support the
    {kind} 'name'{where}", the name (as expression too) cut to 64 characters."""
    shown = name if len(name) <= 64 else name[:64] + "..."
    return fhir_error(
        400, "not-supported", f"this server does not support the {kind} {shown!r}{where}", shown
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
    """Validation errors (FastAPI's, or a create's: ``kap_outcomes.creating``) as issues that
    say what the problem items of /v1 say (:func:`problems_from_errors`), each where the
    problem is. A bad query or header is a 400, as is a body that is no JSON object at all
    (``structure``); a bad value in the body a 422."""
    errors = list(errors)
    issues: list[dict[str, Any]] = []
    status = 422
    for err, problem in zip(errors, problems_from_errors(errors), strict=True):
        loc = tuple(err.get("loc", ())) or ("body",)
        kind = str(err.get("type", ""))
        if loc[0] != "body" or len(loc) == 1:
            status = 400
        if len(loc) == 1 or kind == "json_invalid":
            code = "structure"
        elif kind == "missing":
            code = "required"
        else:
            code = "value"
        issues.append(_problem_issue(code, problem))
    return status, operation_outcome(issues or [_issue("invalid", "The request is not valid.")])
