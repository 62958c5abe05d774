"""The one grammar of numbers this service reads, checked before any arithmetic.

A number's cost must not depend on what a client chose to write: ``int(Decimal("1e200000"))``
takes seconds and holds the interpreter, and a 4,000-digit integer is parsed digit by digit.
So every number is first judged by its length and form, as text, and only then converted:

- in a JSON body, a number token has at most :data:`MAX_DIGITS` digits before and after the
  point and an exponent of at most two digits (``0.5``, ``1e-05`` and ``1700000000`` pass;
  ``1e200000``, ``1E+400`` and a 4,000-digit integer do not);
- where a form carries a number as text (a FHIR ``valueString`` total, a weight written as a
  string), it is plain decimal notation with no exponent at all, at most :data:`MAX_DIGITS`
  digits on either side of the point.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

MAX_DIGITS = 20
"""Digits before, and after, the decimal point: more than any count, score, dose or
timestamp needs (a 64-bit integer has 19 or 20)."""

JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]{0,19})(?:\.[0-9]{1,20})?(?:[eE][+-]?[0-9]{1,2})?")
"""A JSON number token (RFC 8259 section 6) within the bounds above."""

NUMERIC_TEXT = re.compile(r"[+-]?[0-9]{1,20}(?:\.[0-9]{1,20})?")
"""A number written as a string: plain decimal notation only."""

NUMBER_RULE = (
    f"a number has at most {MAX_DIGITS} digits before and after the decimal point "
    "and an exponent of at most two digits"
)
TEXT_NUMBER_RULE = (
    f"a number written as text is plain decimal notation: at most {MAX_DIGITS} digits "
    "before and after the point, no exponent"
)

_LIMIT = 10**MAX_DIGITS


def is_json_number(token: str) -> bool:
    """Whether a JSON number token is within the grammar (checked on the text alone)."""
    return len(token) <= 2 * MAX_DIGITS + 6 and JSON_NUMBER.fullmatch(token) is not None


def bounded_decimal(value: object) -> Decimal | None:
    """``value`` as a Decimal, or None when it is not a bounded number.

    Accepts an int or a finite float of less than 10^20 in magnitude (what a JSON parser made
    of an accepted token), or a string in :data:`NUMERIC_TEXT`. Booleans are not numbers.
    The text is judged before any conversion, so the work is bounded whatever was sent.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value) if -_LIMIT < value < _LIMIT else None
    if isinstance(value, float):
        if not math.isfinite(value) or not -_LIMIT < value < _LIMIT:
            return None
        return Decimal(repr(value))
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 2 * MAX_DIGITS + 2 or NUMERIC_TEXT.fullmatch(text) is None:
            return None
        return Decimal(text)
    return None
