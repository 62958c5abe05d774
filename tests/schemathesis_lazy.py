"""Schemathesis' pytest plugin builds every operation's Hypothesis test when it collects the
item (``build_operation_test``: the strategies, the examples and ~4,100 coverage cases), in
every xdist worker, though each item runs on one worker only: about 3.2 s of CPU per worker at
collection, and the built cases stay in memory for the rest of the session. Built when run,
each worker builds only its own items (about 2 s of CPU for its half: a net ~1 s per worker).

``build_lazily(test)`` makes the plugin collect the same items for ``test`` (same node ids,
fixtures and marks), each holding a stand-in that builds the real test with the plugin's own
arguments when the item runs, calls it and lets it go. What runs is what the plugin built:
the same strategies, examples, coverage cases, settings and checks.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from schemathesis.pytest import _test_builder

_BUILD = _test_builder.build_operation_test
_LAZY: set[Callable[..., Any]] = set()


def build_lazily(test: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator (outermost, above ``@schema.parametrize()``): build ``test``'s operation
    tests when each item runs, not when it is collected."""
    _LAZY.add(test)
    return test


class _Handle:
    """``stand_in.hypothesis``: Hypothesis' handle of the built test (builds it if asked)."""

    def __init__(self, built: Callable[[], Any]) -> None:
        self._built = built

    def __getattr__(self, name: str) -> Any:
        return getattr(self._built().hypothesis, name)


def _build_operation_test(**kwargs: Any) -> Callable[..., Any]:
    test_func = kwargs["test_func"]
    if test_func not in _LAZY:
        return _BUILD(**kwargs)
    built: list[Callable[..., Any]] = []

    def build() -> Callable[..., Any]:
        if not built:
            built.append(_BUILD(**kwargs))
        return built[0]

    # ``wraps`` shares the test function's attributes as the built test does (its Schemathesis
    # metadata object, where the build and the run set their marks, and its @settings)
    @functools.wraps(test_func)
    def stand_in(*args: Any, **kw: Any) -> Any:
        __tracebackhide__ = True
        try:
            return build()(*args, **kw)
        finally:
            built.clear()  # each item runs once: its cases need not stay in memory

    signature = inspect.signature(test_func)
    # As Hypothesis' ``given`` does: ``case`` is drawn, the other parameters are fixtures
    stand_in.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for p in signature.parameters.values() if p.name != "case"]
    )
    stand_in.is_hypothesis_test = True  # type: ignore[attr-defined]
    stand_in.hypothesis = _Handle(build)  # type: ignore[attr-defined]
    return stand_in


_test_builder.build_operation_test = _build_operation_test
