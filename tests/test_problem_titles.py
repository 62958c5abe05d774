"""Each kind of problem has its one short title (RFC 9457 3.1.3), written out here by hand."""

from __future__ import annotations

from kap_outcomes import errors
from kap_outcomes.auth.enrollment import invalid_code
from kap_outcomes.errors import DomainError, FieldProblem


def test_the_titles_of_the_problems():
    titles = [
        (errors.not_found("Patient"), "Not found"),
        (errors.conflict("x"), "Conflict"),
        (errors.invalid([FieldProblem(detail="x")]), "Validation failed"),
        (errors.unauthorized(), "Unauthorized"),
        (errors.forbidden(), "Forbidden"),
        (errors.unavailable(), "Service unavailable"),
        (errors.too_many_requests(3, "x"), "Too many requests"),
        (errors.unsupported_media_type(), "Unsupported media type"),
        (invalid_code(), "Invalid enrollment code"),
        (DomainError(), "Bad request"),
        (DomainError(slug="signin-refused", title="Sign-in refused"), "Sign-in refused"),
    ]
    for error, title in titles:
        assert (error.title, error.body("/v1/x")["title"]) == (title, title), error.slug
