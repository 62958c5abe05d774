"""Routes whose dependencies are solved once, when the app is built, instead of per request.

FastAPI solves a route's dependency tree on every request: for each level it looks up the
overrides, validates parameters, manages a cache and an exit stack. A tree that holds nothing
to validate (each dependency takes the ``Request`` and other dependencies, nothing else) has
one way of being solved, known when the route is built: :class:`PresolvedRoute` calls it
straight through. ``app.dependency_overrides`` still applies: while any dependency of the tree
is overridden, the request goes through FastAPI's own solver, exactly as any other route.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Coroutine
from typing import Any

import fastapi.routing
from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

_EFFECTIVE: Any = getattr(fastapi.routing, "_effective_route_context_var", None)
"""FastAPI builds an included route's handler under its effective context (a ContextVar);
without one (other FastAPI versions) a route is its own context."""


def _effective(route: APIRoute) -> Any:
    """The route as included in the app (its dependant, its overrides provider): what
    FastAPI's own handler of this route uses."""
    context = _EFFECTIVE.get() if _EFFECTIVE is not None else None
    return context if getattr(context, "original_route", None) is route else route


def _is_async(call: Any) -> bool:
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
        getattr(call, "__call__", None)  # noqa: B004 - a callable instance's method
    )


def _plain(dependant: Dependant, seen: set[int]) -> bool:
    """Only the request and other such dependencies, each async and each once in the tree."""
    if (
        dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
        or dependant.call is None
        or not _is_async(dependant.call)
        or id(dependant.call) in seen
    ):
        return False
    seen.add(id(dependant.call))
    return all(_plain(sub, seen) for sub in dependant.dependencies)


def _returns_response(endpoint: Callable[..., Any]) -> bool:
    try:
        returned = typing.get_type_hints(endpoint).get("return")
    except (NameError, TypeError):
        return False
    return isinstance(returned, type) and issubclass(returned, Response)


def _calls(dependant: Dependant) -> set[Any]:
    found: set[Any] = set()
    for sub in dependant.dependencies:
        found.add(sub.call)
        found |= _calls(sub)
    return found


async def _solve(dependant: Dependant, request: Request) -> Any:
    kwargs: dict[str, Any] = {}
    if dependant.request_param_name:
        kwargs[dependant.request_param_name] = request
    for sub in dependant.dependencies:
        kwargs[str(sub.name)] = await _solve(sub, request)
    call: Any = dependant.call
    return await call(**kwargs)


def _merged(extra: dict[str, Any] | None, documented: dict[str, Any]) -> dict[str, Any]:
    merged = dict(extra or {})
    for name, value in documented.items():
        if isinstance(value, list):
            merged[name] = [*value, *merged.get(name, [])]
        else:
            merged.setdefault(name, value)
    return merged


class PresolvedRoute(APIRoute):
    """A route whose endpoint returns a ``Response`` and whose dependency tree is plain (see
    the module docstring) is called without FastAPI's per-request solver; any other route is
    FastAPI's own.

    A dependency that reads part of the request itself documents it: its ``openapi_extra``
    (parameters, request body) is merged into the route's (the route's own wins).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for call in _calls(self.dependant):
            documented = getattr(call, "openapi_extra", None)
            if isinstance(documented, dict):
                self.openapi_extra = _merged(self.openapi_extra, documented)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        generic = super().get_route_handler()
        route = _effective(self)
        dependant: Dependant = route.dependant
        if not _returns_response(self.endpoint) or not _plain(dependant, set()):
            return generic
        calls = frozenset(_calls(dependant))
        provider = route.dependency_overrides_provider

        async def presolved(request: Request) -> Response:
            overrides = getattr(provider or request.app, "dependency_overrides", None)
            if overrides and not calls.isdisjoint(overrides):
                return await generic(request)
            response: Response = await _solve(dependant, request)
            return response

        return presolved
