"""Query strings on /v1 never widen a list: an unknown or repeated parameter is a 422.

FastAPI ignores a query parameter a route does not declare and keeps only the last of a
repeated one, so ``/v1/alerts?patient=…`` (a typo for ``patient_id``) would list every alert of
the organisation and ``?patient_id=a&patient_id=b`` would silently answer for ``b``. Like an
unknown body field, both are refused. FHIR routes have their own rules (lenient by default,
``Prefer: handling=strict``; see ``fhir/search.py``).
"""

from __future__ import annotations

from collections import Counter

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from kap_outcomes.errors import FieldProblem, invalid

V1_PREFIX = "/v1/"

_declared: dict[int, frozenset[str]] = {}


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _names(route: APIRoute) -> frozenset[str]:
    key = id(route)
    if key not in _declared:
        _declared[key] = frozenset(_query_names(route.dependant))
    return _declared[key]


def only_declared_query(request: Request) -> None:
    """An app-wide dependency: on /v1, every query parameter is declared and given once."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.url.path.startswith(V1_PREFIX):
        return
    declared = _names(route)
    counts = Counter(name for name, _ in request.query_params.multi_items())
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
