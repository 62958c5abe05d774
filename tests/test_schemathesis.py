"""Property-based run of the app's own OpenAPI document with Schemathesis.

Every operation gets generated requests (valid and invalid) with a real clinician token;
three checks must hold for each: no 5xx (``not_a_server_error``), every response matches
the documented schema (``response_schema_conformance``), and the operation refuses a
request without valid credentials (``ignored_auth``).

The generated data includes what hostile and real-world clients send: timestamps anywhere in
years 1..9999 with offsets up to ±14:00 (so ``9999-12-31T23:59:59-14:00``, whose UTC form
does not exist), and query parameters and top-level body strings replaced by a NUL-holding
text or such a timestamp (FHIR date searches take plain strings, prefixes included).
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import ignored_auth, response_schema_conformance

from kap_outcomes.app import create_app
from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import ensure_organisation, issue_token
from kap_outcomes.config import Settings
from kap_outcomes.db import Database, make_engine
from kap_outcomes.migrate import upgrade

from .conftest import PG_URL, TEST_SIGNING_KEY

# The schema is loaded when the module is imported, so the app exists then too. On SQLite it
# gets a database of its own; on PostgreSQL it shares the suite's, which the
# ``database_url`` fixture migrates before the test runs.
if PG_URL:
    URL = PG_URL
else:
    URL = f"sqlite:///{tempfile.mkdtemp(prefix='kap-schemathesis-')}/api.db"
    upgrade(URL)
app = create_app(
    Settings(
        database_url=URL,
        environment="test",
        signing_key=TEST_SIGNING_KEY,
        rate_limit_per_minute=0,
        failed_auth_per_minute=0,
        # GET /v1/events may wait 30 s or stream: capped here so that no case hangs
        events_max_wait_s=0.1,
        events_stream_max_s=0.5,
        worker_embedded=False,
    )
)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)

CHECKS = [not_a_server_error, response_schema_conformance, ignored_auth]

EDGE_TIMES = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]
HOSTILE_TEXT = [
    "nul\u0000inside",
    *EDGE_TIMES,
    "ge9999-12-31T23:59:59-14:00",
    "lt0001-01-01T00:00:00+14:00",
]


def _with_offset(moment: datetime, minutes: int) -> str:
    return moment.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat()


schemathesis.openapi.format(
    "date-time",
    st.sampled_from(EDGE_TIMES)
    | st.builds(_with_offset, st.datetimes(), st.integers(-14 * 60, 14 * 60)),
)


def _hostile(container: dict[str, Any] | None) -> st.SearchStrategy[Any]:
    """The container as generated, or with one of its strings replaced by a hostile one."""
    if not isinstance(container, dict):
        return st.just(container)
    names = sorted(k for k, v in container.items() if isinstance(v, str | list))
    if not names:
        return st.just(container)

    def replaced(name: str, value: str) -> dict[str, Any]:
        return container | {name: [value] if isinstance(container[name], list) else value}

    return st.just(container) | st.builds(
        replaced, st.sampled_from(names), st.sampled_from(HOSTILE_TEXT)
    )


@schema.hook
def flatmap_query(_ctx: Any, query: dict[str, Any] | None) -> st.SearchStrategy[Any]:
    return _hostile(query)


@schema.hook
def flatmap_body(_ctx: Any, body: Any) -> st.SearchStrategy[Any]:
    return _hostile(body)


@pytest.fixture(scope="module")
def clinician_headers(database_url: str) -> dict[str, str]:
    db = Database(make_engine(URL))

    def create(conn: Any) -> str:
        org_id = ensure_organisation(conn, "schemathesis")
        return issue_token(conn, organisation_id=org_id, role=Role.clinician)[1]

    token = db.run_write(create)
    db.dispose()
    return {"Authorization": f"Bearer {token}"}


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_openapi_contract(case: Any, clinician_headers: dict[str, str]) -> None:
    case.call_and_validate(headers=clinician_headers, checks=CHECKS)
