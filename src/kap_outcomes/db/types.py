"""Column types, table naming, ids and the clock: what every table module builds on."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION

JSONType = JSON().with_variant(JSONB(), "postgresql")
NullableJSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
"""A JSON column whose Python None is SQL NULL (not the JSON value ``null``)."""


class _RandomBytes(threading.local):
    """The operating system's random bytes, read 4 KiB at a time per thread.

    Each ``os.urandom`` call is a system call that releases the GIL; under load a request
    making three ids waited for the GIL three more times (the ingest profile). The bytes are
    the same CSPRNG output, only read in bulk, and each is handed out once.
    """

    SIZE = 4096

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        self.pool = b""
        self.at = 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.pool):
            self.pool, self.at = os.urandom(self.SIZE), 0
        chunk = self.pool[self.at : self.at + n]
        self.at += n
        return chunk


_random_bytes = _RandomBytes()
os.register_at_fork(after_in_child=_random_bytes.forget)  # a child never reuses its bytes


def new_id() -> str:
    """A UUIDv7 (RFC 9562 §5.7): 48 bits of Unix milliseconds, then 74 random bits.

    Still an opaque, unguessable id to clients; for the database, new rows land at the end of
    every primary-key index instead of on a random page, so a commit writes a few pages, not
    one per row (the ingest benchmark slowed down as the table grew with UUIDv4).
    """
    millis = f"{time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF:012x}"
    rand = int.from_bytes(_random_bytes.take(10))  # 80 bits, 74 used
    return (
        f"{millis[:8]}-{millis[8:]}-7{rand >> 62 & 0xFFF:03x}"
        f"-{0x8000 | rand >> 48 & 0x3FFF:04x}-{rand & 0xFFFF_FFFF_FFFF:012x}"
    )


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC timestamp on every backend (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def bind_processor(self, dialect: Dialect) -> Any:
        """On SQLite, straight to the text SQLAlchemy's DATETIME stores (``2026-03-02
        15:04:05.000000``, microseconds always), in one step: every ingest binds five."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime refused")
            if value.utcoffset():
                value = value.astimezone(UTC)
            return (
                f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
                f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
            )

        return process
