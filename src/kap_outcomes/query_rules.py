"""Query strings on /v1 never widen a list: an unknown or repeated parameter is a 422.

FastAPI ignores a query parameter a route does not declare and keeps only the last of a
repeated one, so ``/v1/alerts?patient=…`` (a typo for ``patient_id``) would list every alert of
the organisation and ``?patient_id=a&patient_id=b`` would silently answer for ``b``. Like an
unknown body field, both are refused. FHIR routes have their own rules (lenient by default,
``Prefer: handling=strict``; see ``fhir/search.py``).

The rule is part of the route class (:class:`DeclaredQueryRoute`), not an app-wide FastAPI
dependency: the names a route declares are collected once when the route is built, and a
request without a query string (every ingest) pays one dictionary lookup. As a dependency it
cost every request of the app a sub-dependency solve and a hop to a worker thread (the
ingest profile in bench/README.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant

from kap_outcomes.errors import FieldProblem, invalid
from kap_outcomes.presolved import PresolvedRoute

V1_PREFIX = "/v1/"


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def check_query(query_string: bytes, declared: frozenset[str]) -> None:
    """Every parameter of ``query_string`` is one of ``declared`` and given once, else 422."""
    # parsed as Starlette parses it for the route (so the names are the same)
    counts = Counter(
        name for name, _ in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    )
    problems = [
        FieldProblem(detail="this parameter is not accepted here", parameter=name[:64])
        for name in counts
        if name not in declared
    ] + [
        FieldProblem(detail="give this parameter once", parameter=name)
        for name, seen in counts.items()
        if seen > 1 and name in declared
    ]
    if problems:
        raise invalid(problems, "A query parameter is unknown or repeated.")


class DeclaredQueryRoute(PresolvedRoute):
    """A route that refuses, on /v1, a query parameter it does not declare or one given twice
    (before anything else of the route runs: before authentication and the body)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if not self.path_format.startswith(V1_PREFIX):
            return handler
        declared = frozenset(_query_names(self.dependant))

        async def checked(request: Request) -> Response:
            query_string = request.scope.get("query_string")
            if query_string:
                check_query(query_string, declared)
            return await handler(request)

        return checked
