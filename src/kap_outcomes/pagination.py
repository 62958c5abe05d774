"""Keyset pagination with opaque cursors, stable under concurrent inserts."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel

from kap_outcomes.errors import FieldProblem, invalid
from kap_outcomes.patterns import ID_PATTERN

T = TypeVar("T")
R = TypeVar("R")


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None


def encode_cursor(at: datetime, row_id: str) -> str:
    raw = orjson.dumps([at.isoformat(), row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cut(
    rows: list[R], limit: int, key: Callable[[R], tuple[datetime, str]]
) -> tuple[list[R], str | None]:
    """Rows fetched with ``limit + 1``: the page, and the cursor after it if there is more."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(*key(rows[-1]))


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value: Any = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        at, row_id = value
        if not isinstance(at, str) or not isinstance(row_id, str) or len(row_id) > 36:
            raise ValueError("bad cursor")
        if not re.fullmatch(ID_PATTERN, row_id):
            raise ValueError("bad cursor")
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("bad cursor")
        return when.astimezone(UTC), row_id
    except (ValueError, TypeError, OverflowError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise invalid(
            [FieldProblem(detail="not a cursor this service issued", parameter="cursor")],
            detail="The cursor is not valid.",
        ) from exc
