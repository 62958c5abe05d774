"""What a JSON document may hold before anything reads it: each key once, bounded numbers,
bounded nesting and a bounded number of values.

A JSON parser resolves a repeated key by keeping one of the values (the standard library and
orjson keep the last, others the first): for a form, one of two answers would be dropped in
silence. And a parser's work depends on what it is sent (a 4,000-digit integer, ``1e200000``
taken on to ``Decimal``, a thousand levels of arrays). :func:`check` refuses all of these, each
with a JSON Pointer (RFC 6901) to where it is, so the work per document is bounded whatever
arrives. The request middleware runs it on every JSON body; the token endpoint on the claims
of a client assertion.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from kap_outcomes.numbers import MAX_DIGITS, NUMBER_RULE, is_json_number

MAX_DEPTH = 32
"""Levels of objects and arrays: a FHIR QuestionnaireResponse with groups nested five deep
needs about 18."""

MAX_VALUES = 10_000
"""Values (of any kind) in one document: the largest form we take (200 items) needs ~3,000."""

MAX_PROBLEMS = 10
"""At most this many problems are reported (the first ones found)."""

NUL = "\x00"
NUL_DETAIL = "must not contain NUL characters (U+0000)"
"""One rule for all text a client sends: PostgreSQL cannot store a NUL in text or JSONB
(SQLite can), so without it the same document would be stored on one database and fail on
the other."""


@dataclass(frozen=True, slots=True)
class JsonProblem:
    """Where (a JSON Pointer, ``""`` for the whole document) and what is wrong."""

    pointer: str
    detail: str
    kind: str
    """``duplicate-key``, ``number``, ``depth``, ``size`` or ``nul``."""


class _RepeatedKeys(dict[str, Any]):
    """An object in which some key appeared more than once (the keys are kept)."""

    __slots__ = ("repeated",)

    repeated: list[str]


class _RefusedNumber:
    """Stands in for a number token outside the grammar; it is never converted."""

    __slots__ = ()


_REFUSED = _RefusedNumber()


class _TooManyValues(Exception):
    pass


class _Scan:
    """The parsers of one thread, and what the current parse found.

    ``full`` judges every number token and counts values as it goes (stopping past
    :data:`MAX_VALUES`); its hooks are Python calls, so a large document also lets other
    threads run. ``quick`` only watches for repeated keys: it serves small documents whose
    text holds nothing a number outside the grammar needs (a run of 21 digits, a three-digit
    exponent, ``NaN`` or ``Infinity``), which is nearly every request.
    """

    def __init__(self) -> None:
        self.flagged = False
        self.values = 0
        self.full = json.JSONDecoder(
            object_pairs_hook=self._counted_object,
            parse_int=self._number,
            parse_float=self._number,
            parse_constant=self._constant,
        )
        self.quick = json.JSONDecoder(object_pairs_hook=self._object)

    def _count(self) -> None:
        self.values += 1
        if self.values > MAX_VALUES:  # stop parsing at once
            raise _TooManyValues

    def _object(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        seen: set[str] = set()
        repeated: list[str] = []
        for key, _ in pairs:
            if key in seen and key not in repeated:
                repeated.append(key)
            seen.add(key)
        marked = _RepeatedKeys(obj)
        marked.repeated = repeated
        self.flagged = True
        return marked

    def _counted_object(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        self._count()
        return self._object(pairs)

    def _number(self, token: str) -> Any:
        self._count()
        if not is_json_number(token):
            self.flagged = True
            return _REFUSED
        return float(token) if any(c in token for c in ".eE") else int(token)

    def _constant(self, _token: str) -> Any:  # NaN, Infinity, -Infinity: not JSON numbers
        self._count()
        self.flagged = True
        return _REFUSED


_AS_ZERO = bytes.maketrans(b"123456789E", b"000000000e")
_LONG_RUN = b"0" * (MAX_DIGITS + 1)


def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or any ``application/*+json`` (FHIR's included), parameters aside."""
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _may_hold_refused_numbers(body: bytes) -> bool:
    """Whether the text holds what a number outside the grammar needs (a run of 21 digits,
    an exponent of three digits, ``NaN``, ``Infinity``), anywhere, strings included: a few
    C-speed scans, no parse."""
    text = body.translate(_AS_ZERO)
    return (
        _LONG_RUN in text
        or b"e000" in text
        or b"e+000" in text
        or b"e-000" in text
        or b"NaN" in text
        or b"Infinity" in text
    )


_scans = threading.local()


def _scan() -> _Scan:
    scan: _Scan | None = getattr(_scans, "scan", None)
    if scan is None:
        scan = _scans.scan = _Scan()
    scan.flagged = False
    scan.values = 0
    return scan


def _escape(key: str) -> str:
    return key[:100].replace("~", "~0").replace("/", "~1")


def _too_many(pointer: str = "") -> JsonProblem:
    return JsonProblem(pointer, f"more than {MAX_VALUES} values in one document", "size")


def _walk(document: Any, flagged: bool) -> list[JsonProblem]:
    """Locate repeated keys and refused numbers; count the values; bound the nesting."""
    problems: list[JsonProblem] = []
    values = 1
    stack: list[tuple[Any, str, int]] = [(document, "", 1)]
    while stack and len(problems) < MAX_PROBLEMS:
        value, pointer, depth = stack.pop()
        if value is _REFUSED:
            problems.append(JsonProblem(pointer, f"not accepted: {NUMBER_RULE}", "number"))
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_DEPTH:
            problems.append(JsonProblem(pointer, f"nested deeper than {MAX_DEPTH} levels", "depth"))
            continue
        values += len(value)
        if values > MAX_VALUES:
            return [_too_many()]
        if isinstance(value, _RepeatedKeys):
            problems.extend(
                JsonProblem(
                    f"{pointer}/{_escape(key)}",
                    "this key appears more than once in its object: one of its values "
                    "would be lost",
                    "duplicate-key",
                )
                for key in value.repeated
            )
        children = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in reversed(list(children)):
            if isinstance(child, dict | list) or (flagged and child is _REFUSED):
                stack.append((child, f"{pointer}/{_escape(str(key))}", depth + 1))
    return problems[:MAX_PROBLEMS]


def check(body: bytes) -> list[JsonProblem]:
    """The problems of a JSON document; empty when it may be read.

    Text that is not JSON at all (or not UTF-8) is not judged here: whoever reads the
    document reports that in its own words.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return []
    scan = _scan()
    # A document of fewer bytes than MAX_VALUES cannot hold more values than that.
    quick = len(body) <= MAX_VALUES and not _may_hold_refused_numbers(body)
    try:
        document = (scan.quick if quick else scan.full).decode(text)
    except _TooManyValues:
        return [_too_many()]
    except RecursionError:
        return [JsonProblem("", f"nested deeper than {MAX_DEPTH} levels", "depth")]
    except ValueError:  # not JSON: left to the route
        return []
    containers = body.count(b"[") + body.count(b"{")  # at least as many as there are
    if not scan.flagged and (
        (containers <= MAX_DEPTH and containers + body.count(b",") < MAX_VALUES)
        or _within_bounds(document)
    ):
        problems = []
    else:
        problems = _walk(document, scan.flagged)
    if not problems and b"\\u0000" in body:  # only then a NUL may be in a string
        pointer = nul_pointer(document)
        if pointer is not None:
            problems = [JsonProblem(pointer, NUL_DETAIL, "nul")]
    return problems


def nul_pointer(document: Any) -> str | None:
    """The JSON Pointer of the first string (member name or value) holding a NUL, else None."""
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


def _within_bounds(document: Any) -> bool:
    """Nesting and count of values within the bounds (the common case, without pointers)."""
    if type(document) is not dict and type(document) is not list:
        return True
    values = 1
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return False
        values += len(value)
        if values > MAX_VALUES:
            return False
        for child in value.values() if isinstance(value, dict) else value:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return True
