"""Database errors by kind: unavailable (503), a value out of range (422), or a bug (500)."""

from __future__ import annotations

import sqlite3
import sys
from typing import Literal

from sqlalchemy.exc import DBAPIError, OperationalError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from kap_outcomes.errors import DomainError, invalid, unavailable

_SQLITE_UNAVAILABLE = frozenset({5, 6, 7, 8, 10, 11, 13, 14, 15, 26})
"""Primary result codes of SQLite that mean "not now" rather than "not this statement":
BUSY, LOCKED, NOMEM, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, NOTADB."""


def _unavailable(exc: BaseException) -> bool:
    """Is this the database failing (503, retry), rather than the statement or the value?

    SQLAlchemy's wrappers, and the drivers' own errors: the hot statements run on the DBAPI
    cursor, so a lost connection or a deadlock there reaches us unwrapped. psycopg's
    ``OperationalError`` is connection loss, shutdown, cancellation, deadlock and
    serialization failure; SQLite's mixes a locked or unreadable file with plain SQL errors,
    so there the result code decides."""
    if isinstance(exc, PoolTimeoutError) or _psycopg_error(exc, "OperationalError"):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is None or code & 0xFF in _SQLITE_UNAVAILABLE
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        return not isinstance(exc.orig, sqlite3.OperationalError) or _unavailable(exc.orig)
    return False


def _out_of_range(exc: BaseException) -> bool:
    """A value the database cannot hold: SQLSTATE class 22 (data exception: a number or
    timestamp out of range, text PostgreSQL refuses), a Python int beyond 64 bits for SQLite,
    a timestamp without a UTC form refused by :class:`UTCDateTime`."""
    orig = exc.orig if isinstance(exc, StatementError) else exc
    return isinstance(orig, sqlite3.DataError | OverflowError) or _psycopg_error(orig, "DataError")


def _psycopg_error(
    exc: BaseException | None, kind: Literal["OperationalError", "DataError"]
) -> bool:
    """Is ``exc`` psycopg's error of this kind? Only once something (a PostgreSQL engine) has
    imported the driver can it be: a process on SQLite never imports psycopg for this."""
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, getattr(psycopg, kind))


def out_of_range() -> DomainError:
    return invalid([], detail="A value lies outside what can be stored; nothing was stored.")


def translate(exc: BaseException) -> BaseException:
    """Database errors by kind: a database that cannot be reached or is locked is a 503, a
    value it cannot hold a 422; anything else stays what it is (a 500)."""
    if _unavailable(exc):
        return unavailable()
    if _out_of_range(exc):
        return out_of_range()
    return exc
