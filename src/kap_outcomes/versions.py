"""Versioned records, the queries of any of them: corrections never overwrite.

An assessment and a care session each have a current version (its table) and the versions it
superseded (a revision table holding the same clinical columns, the record's id under
``parent_key``). The correction itself (who may, which version, what changes) is the
domain's; this is the storage both share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Connection, Table, insert, select, update
from sqlmodel import Field, SQLModel

from kap_outcomes.db import UTCDateTime, utcnow
from kap_outcomes.rows import every, owned, table_of

C = TypeVar("C", bound=SQLModel, covariant=True)
R = TypeVar("R", bound=SQLModel, covariant=True)


class Version(Protocol):
    """What a correction reads of the current version, whatever the record."""

    @property
    def id(self) -> str: ...
    @property
    def patient_id(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def status(self) -> str: ...


class VersionColumns(SQLModel):
    """When, by whom and why a version was recorded: columns of every versioned table (the
    current version's and the kept versions'), beside ``version`` and ``status``."""

    version_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    recorded_by: str | None = Field(default=None, max_length=36)
    version_reason: str | None = Field(default=None, max_length=500)


def first_version(status: str, *, at: datetime, by: str) -> dict[str, Any]:
    """The version columns of a record's first version: version 1, recorded ``at`` by the
    token ``by``, with no reason (only a correction gives one)."""
    return {
        "version": 1,
        "status": status,
        "version_at": at,
        "recorded_by": by,
        "version_reason": None,
    }


@dataclass(frozen=True)
class Versioned(Generic[C, R]):
    """The current table ``current`` and its history ``revision`` (``parent_key`` names the
    record)."""

    current: type[C]
    revision: type[R]
    parent_key: str
    table: Table = field(init=False)
    revisions: Table = field(init=False)
    kept: tuple[str, ...] = field(init=False)
    """The revision's columns copied from the current version (all but its own keys)."""

    def __post_init__(self) -> None:
        revisions = table_of(self.revision)
        object.__setattr__(self, "table", table_of(self.current))
        object.__setattr__(self, "revisions", revisions)
        object.__setattr__(
            self,
            "kept",
            tuple(c.name for c in revisions.columns if c.name not in ("id", self.parent_key)),
        )

    def get(
        self, conn: Connection, *, organisation_id: str, id: str, lock: bool = False
    ) -> C | None:
        """The current version; ``lock``: locked until the transaction ends (PostgreSQL;
        SQLite's single writer serialises corrections anyway)."""
        return owned(conn, self.current, id=id, organisation_id=organisation_id, lock=lock)

    def keep(self, conn: Connection, *, current: Version, revision_id: str) -> None:
        """Copy the current version, unchanged, into the history before it is superseded."""
        values = {name: getattr(current, name) for name in self.kept}
        values[self.parent_key] = current.id
        conn.execute(insert(self.revisions).values(id=revision_id, **values))

    def replace(
        self, conn: Connection, *, id: str, expected_version: int, values: dict[str, Any]
    ) -> bool:
        """Write the next version; False if another correction got there first."""
        result = conn.execute(
            update(self.table)
            .where(self.table.c.id == id, self.table.c.version == expected_version)
            .values(**values)
        )
        return result.rowcount == 1

    def history(self, conn: Connection, *, id: str) -> list[R]:
        """The superseded versions, oldest first."""
        column = self.revisions.c[self.parent_key]
        query = select(self.revisions).where(column == id).order_by(self.revisions.c.version)
        return every(conn, self.revision, query)
