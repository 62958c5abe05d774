"""The database layer, one job per module.

- ``engine``: engines, pool settings, SQLite's pragmas
- ``types``: column types, table naming, ids (UUIDv7) and the clock
- ``statements``: fast statements (``HotStatement``), the one seam for the ingest's hot SQL
- ``deferred``: rows batched before a commit, callbacks after it
- ``errors``: database errors by kind (503, 422, or left as they are)
- ``group_commit``: SQLite's group commit
- ``server_commit``: PostgreSQL's group commit and small reads, each on a thread of its own
- ``unit_of_work``: ``Database``, the owner of every transaction

The names the rest of the project uses are importable from here.
"""

from kap_outcomes.db.deferred import after_commit, defer_rows
from kap_outcomes.db.engine import is_sqlite, make_engine
from kap_outcomes.db.statements import HotStatement
from kap_outcomes.db.types import (
    NAMING_CONVENTION,
    JSONType,
    NullableJSONType,
    UTCDateTime,
    new_id,
    utcnow,
)
from kap_outcomes.db.unit_of_work import PING_CONNECT_TIMEOUT_S, Database

__all__ = [
    "NAMING_CONVENTION",
    "PING_CONNECT_TIMEOUT_S",
    "Database",
    "HotStatement",
    "JSONType",
    "NullableJSONType",
    "UTCDateTime",
    "after_commit",
    "defer_rows",
    "is_sqlite",
    "make_engine",
    "new_id",
    "utcnow",
]
