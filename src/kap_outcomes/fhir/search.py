"""FHIR search parameters (token, reference, date with prefixes) and searchset Bundles.

Pages are keyset pages over (administered_at, id) of the assessments behind the resources,
with an opaque ``_cursor`` in the ``next`` link (offset paging breaks under concurrent
inserts). An Observation cursor also says how many of that assessment's Observations the
previous page already served.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode

import orjson

from kap_outcomes.fhir.outcome import FhirError, fhir_error, unsupported_parameter

T = TypeVar("T")

DEFAULT_COUNT = 50
MAX_COUNT = 500


def bad_parameter(name: str, detail: str) -> FhirError:
    return fhir_error(400, "value", detail, name)


def token(value: str, name: str) -> tuple[str | None, str]:
    """``system|code``, ``|code`` (no system) or ``code``: (system or None for any, code)."""
    if "|" in value:
        system, _, code = value.partition("|")
        if not code:
            raise bad_parameter(name, "a token needs a code")
        return system, code
    if not value:
        raise bad_parameter(name, "a token needs a code")
    return None, value


# Reading the query -------------------------------------------------------------------------

MAX_VALUE_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class Supported:
    """The search parameters of one resource type that this server applies."""

    names: frozenset[str]
    references: frozenset[str] = frozenset()  # these also take a type modifier (subject:Patient)
    closed: frozenset[tuple[str, str]] = frozenset()
    """Parameters with a closed set of values (``_sort``, ``_include``, ``_summary``): the
    (name, value) pairs applied. Another value is treated as an unsupported parameter."""

    def accepts(self, name: str, value: str) -> bool:
        if name in {closed_name for closed_name, _ in self.closed}:
            return (name, value) in self.closed
        return True

    def understands(self, name: str) -> bool:
        base, colon, modifier = name.partition(":")
        if base not in self.names:
            return False
        return not colon or (base in self.references and _TYPE.fullmatch(modifier) is not None)


@dataclass(frozen=True, slots=True)
class Query:
    """The parameters of one search that are applied: by name (in the order sent) and as the
    pairs the ``self`` link repeats."""

    values: dict[str, list[str]]
    applied: list[tuple[str, str]]

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])


def strict_handling(prefer: str | None) -> bool:
    """``Prefer: handling=strict`` (among other preferences, any case)."""
    for part in re.split(r"[,;]", prefer or ""):
        key, _, value = part.partition("=")
        if key.strip().lower() == "handling" and value.strip().strip('"').lower() == "strict":
            return True
    return False


def read_query(params: Sequence[tuple[str, str]], supported: Supported, *, strict: bool) -> Query:
    """Keep what this server applies. An unknown or unsupported parameter (or modifier) is a
    400 under ``handling=strict``; otherwise it is ignored and left out of the ``self`` link,
    so the client can see it was not applied. An empty value is never silently ignored."""
    values: dict[str, list[str]] = {}
    applied: list[tuple[str, str]] = []
    for name, value in params:
        if not supported.understands(name):
            if strict:
                raise unsupported_parameter(name, "search parameter", " here")
            continue
        if not value.strip():
            raise bad_parameter(name, "a search parameter needs a value")
        if not supported.accepts(name, value):
            if strict:
                raise fhir_error(
                    400,
                    "not-supported",
                    f"this server does not support this value of {name} here",
                    name,
                )
            continue
        if len(value) > MAX_VALUE_LENGTH:
            raise fhir_error(400, "too-long", "the value is too long", name)
        values.setdefault(name, []).append(value)
        applied.append((name, value))
    return Query(values=values, applied=applied)


def alternatives(value: str, name: str) -> list[str]:
    """``a,b``: either (FHIR's OR within one parameter; ``\\,`` is a literal comma). An empty
    alternative is an error, never a wildcard."""
    parts = [part.replace("\\,", ",") for part in re.split(r"(?<!\\),", value)]
    if any(not part.strip() for part in parts):
        raise bad_parameter(name, "an empty value between commas")
    return parts


def intersect(sets: Sequence[set[T]]) -> set[T] | None:
    """A repeated parameter holds every time (AND): what all repetitions allow; None if the
    parameter was not given at all."""
    if not sets:
        return None
    out = set(sets[0])
    for more in sets[1:]:
        out &= more
    return out


_PAGED = frozenset({"_count", "_cursor", "_summary"})
_PATIENT_REFERENCES = frozenset({"patient", "subject"})
SUMMARY_COUNT = ("_summary", "count")
"""``_summary=count``: the Bundle's ``total`` only, no entries (the one summary supported)."""
INCLUDES: dict[str, frozenset[str]] = {
    "QuestionnaireResponse": frozenset(
        {"QuestionnaireResponse:subject", "QuestionnaireResponse:patient"}
    ),
    "Observation": frozenset(
        {"Observation:derived-from", "Observation:subject", "Observation:patient"}
    ),
}
"""``_include`` values applied: the form an Observation derives from, the Patient."""
NEWEST_FIRST: dict[str, str] = {"QuestionnaireResponse": "-authored", "Observation": "-date"}
"""The one ``_sort`` applied: newest first (also the order without ``_sort``)."""


def _closed(resource_type: str) -> frozenset[tuple[str, str]]:
    pairs = {SUMMARY_COUNT}
    pairs |= {("_include", value) for value in INCLUDES.get(resource_type, ())}
    if resource_type in NEWEST_FIRST:
        pairs.add(("_sort", NEWEST_FIRST[resource_type]))
    return frozenset(pairs)


SUPPORTED: dict[str, Supported] = {
    "Questionnaire": Supported(frozenset({"url", "_id", "_summary"}), closed=_closed("")),
    "QuestionnaireResponse": Supported(
        frozenset(
            {"patient", "subject", "_id", "authored", "questionnaire", "_lastUpdated"}
            | {"_include", "_sort"}
        )
        | _PAGED,
        references=_PATIENT_REFERENCES,
        closed=_closed("QuestionnaireResponse"),
    ),
    "Observation": Supported(
        frozenset(
            {"patient", "subject", "_id", "code", "category", "date", "_lastUpdated"}
            | {"_include", "_sort"}
        )
        | _PAGED,
        references=_PATIENT_REFERENCES,
        closed=_closed("Observation"),
    ),
    "Patient": Supported(frozenset({"identifier", "_id", "_summary"}), closed=_closed("")),
    "Condition": Supported(
        frozenset({"patient", "subject", "_id", "code"}) | _PAGED,
        references=_PATIENT_REFERENCES,
        closed=_closed(""),
    ),
}
"""What each search applies; the CapabilityStatement lists the same (less ``_cursor``)."""

_TYPE = re.compile(r"[A-Z][A-Za-z]{0,63}")
_RELATIVE = re.compile(
    r"(?:(?P<type>[A-Z][A-Za-z]{0,63})/)?(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)


def reference_id(
    value: str, resource_type: str, name: str, *, base: str | None = None
) -> str | None:
    """The id a reference search value names, or None if it cannot be one of ours.

    ``Patient/123``, ``123`` (with the type from a ``:Patient`` modifier or the parameter), or
    an absolute URL on this server's own base. Another type, or another server, names nothing
    here: no match, never a wider one.
    """
    modifier = name.partition(":")[2]
    rest = value
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*:", value):  # absolute: ours only
        if base is None or not value.startswith(base.rstrip("/") + "/"):
            return None
        rest = value[len(base.rstrip("/")) + 1 :]
    match = _RELATIVE.fullmatch(rest)
    if match is None:
        raise bad_parameter(name, f"not a {resource_type} reference")
    named_type = match.group("type") or modifier or resource_type
    if named_type != resource_type or (modifier and modifier != resource_type):
        return None
    return match.group("id")


_PREFIXES = ("eq", "ge", "le", "gt", "lt")
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def _parse_instant(text: str, name: str) -> tuple[datetime, datetime]:
    """The interval [start, end) that a FHIR date or dateTime stands for."""
    match = _DATE.match(text)
    try:
        if match is not None:
            year, month, day = (int(g) if g else None for g in match.groups())
            assert year is not None
            if month is None:
                start = datetime(year, 1, 1, tzinfo=UTC)
                end = datetime(year + 1, 1, 1, tzinfo=UTC) if year < 9999 else datetime.max
            elif day is None:
                start = datetime(year, month, 1, tzinfo=UTC)
                end = (
                    datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
                    if year < 9999 or month < 12
                    else datetime.max
                )
            else:
                start = datetime(year, month, day, tzinfo=UTC)
                end = start + timedelta(days=1) if date(year, month, day) < date.max else start
            return start, end.replace(tzinfo=UTC)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)  # 9999-12-31T23:59:59-14:00 has no UTC form
    except (ValueError, OverflowError):
        raise bad_parameter(name, "not a FHIR date or dateTime") from None
    precision = timedelta(seconds=1) if value.microsecond == 0 else timedelta(microseconds=1)
    try:
        return value, value + precision
    except OverflowError:
        return value, value


def date_bounds(values: Sequence[str] | None, name: str) -> list[tuple[str, datetime]]:
    """``date=ge2026-01-01&date=lt2026-02`` as comparisons (op, instant), all of which hold."""
    bounds: list[tuple[str, datetime]] = []
    for raw in values or ():
        prefix = raw[:2] if raw[:2] in _PREFIXES else "eq"
        start, end = _parse_instant(raw[2:] if raw[:2] in _PREFIXES else raw, name)
        if prefix == "eq":
            bounds += [(">=", start), ("<", end)]
        elif prefix == "ge":
            bounds.append((">=", start))
        elif prefix == "gt":
            bounds.append((">=", end))
        elif prefix == "le":
            bounds.append(("<", end))
        else:
            bounds.append(("<", start))
    return bounds


def encode_cursor(at: datetime, row_id: str, skip: int = 0) -> str:
    raw = orjson.dumps([at.isoformat(), row_id, skip])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str, int]:
    try:
        value: Any = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        at, row_id, skip = value
        if not (
            isinstance(at, str)
            and isinstance(row_id, str)
            and re.fullmatch(r"[A-Za-z0-9\-]{1,36}", row_id)
            and isinstance(skip, int)
            and 0 <= skip < 64
        ):
            raise ValueError("bad cursor")
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("bad cursor")
        return when.astimezone(UTC), row_id, skip
    except (ValueError, TypeError, OverflowError, binascii.Error, orjson.JSONDecodeError):
        raise bad_parameter("_cursor", "not a cursor this server issued") from None


def bundle(
    *,
    base: str,
    path: str,
    params: list[tuple[str, str]],
    resources: list[dict[str, Any]],
    next_cursor: str | None,
    total: int | None = None,
    included: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A searchset Bundle; ``self`` and ``next`` repeat the search with the cursor. ``total``
    counts the matches of the whole search (never the included resources)."""
    kept = [(k, v) for k, v in params if k != "_cursor"]
    links = [{"relation": "self", "url": _url(base, path, params)}]
    if next_cursor is not None:
        links.append(
            {"relation": "next", "url": _url(base, path, [*kept, ("_cursor", next_cursor)])}
        )
    out: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        out["total"] = total
    out["link"] = links
    out["entry"] = [
        {
            "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
            "resource": r,
            "search": {"mode": mode},
        }
        for mode, group in (("match", resources), ("include", included or []))
        for r in group
    ]
    return out


def _url(base: str, path: str, params: list[tuple[str, str]]) -> str:
    query = urlencode(params)
    return f"{base}/{path}" + (f"?{query}" if query else "")
