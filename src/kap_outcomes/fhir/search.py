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
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import orjson

from kap_outcomes.fhir.outcome import FhirError, fhir_error

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


def reference_id(value: str, resource_type: str, name: str) -> str:
    """``Patient/123``, a full URL ending so, or a bare id."""
    match = re.fullmatch(rf"(?:.*/)?(?:{resource_type}/)?([A-Za-z0-9\-.]{{1,64}})", value)
    if match is None:
        raise bad_parameter(name, f"not a {resource_type} reference")
    return match.group(1)


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
) -> dict[str, Any]:
    """A searchset Bundle; ``self`` and ``next`` repeat the search with the cursor."""
    kept = [(k, v) for k, v in params if k != "_cursor"]
    links = [{"relation": "self", "url": _url(base, path, params)}]
    if next_cursor is not None:
        links.append(
            {"relation": "next", "url": _url(base, path, [*kept, ("_cursor", next_cursor)])}
        )
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def _url(base: str, path: str, params: list[tuple[str, str]]) -> str:
    query = urlencode(params)
    return f"{base}/{path}" + (f"?{query}" if query else "")
