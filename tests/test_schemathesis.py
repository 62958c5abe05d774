"""Property-based run of the app's own OpenAPI document with Schemathesis.

Two runs over every operation, with a real clinician token:

- the contract: generated requests (valid and invalid, and undeclared methods), and every
  check Schemathesis has must hold (the CLI's ``--checks all``): no 5xx, every status and
  header documented and conforming, schema-valid data accepted (except what
  ``schemathesis.toml`` says the schema cannot state), invalid data rejected, 405 with
  ``Allow`` for an undeclared method, no route without auth;
- hostile values: the same generation with query parameters and top-level body strings
  sometimes replaced by what hostile and real-world clients send (a NUL-holding text,
  timestamps whose UTC form does not exist such as ``9999-12-31T23:59:59-14:00``, FHIR date
  prefixes on them): no 5xx, every response as documented, no route without auth.
"""

from __future__ import annotations

import atexit
import http.cookiejar
import json
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis.checks import CHECKS as REGISTERED_CHECKS
from schemathesis.checks import load_all_checks, not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import ignored_auth, response_schema_conformance
from sqlalchemy import text

from kap_outcomes.app import create_app
from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import ensure_organisation, issue_token
from kap_outcomes.auth.tokens import generate_token, hash_token
from kap_outcomes.config import Settings
from kap_outcomes.db import Database, make_engine

from .conftest import PG_URL, ROOT, TEST_SIGNING_KEY
from .migrated import migrated_sqlite
from .schemathesis_lazy import build_lazily

# The schema is loaded when the module is imported, so the app exists then too. On SQLite it
# gets a database of its own; on PostgreSQL it shares the suite's, which the
# ``database_url`` fixture migrates before the test runs.
if PG_URL:
    URL = PG_URL
else:
    _WORKDIR = tempfile.mkdtemp(prefix="kap-schemathesis-")
    atexit.register(shutil.rmtree, _WORKDIR, ignore_errors=True)  # made at import: no fixture
    URL = migrated_sqlite(Path(_WORKDIR) / "api.db")
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


def _of_app(config: SchemathesisConfig | None = None) -> Any:
    """The committed OpenAPI document, which tests/test_openapi.py finds byte-equal to the one
    the app renders, loaded as ``from_asgi("/openapi.json", app)`` loads the app's: cases go to
    the app in-process. Read from the file, the document is not rendered (and the app not
    started) again in every xdist worker when it collects this module."""
    loaded = schemathesis.openapi.from_dict(
        json.loads((ROOT / "openapi" / "openapi.json").read_text()), config=config
    )
    loaded.app = app
    loaded.location = "/openapi.json"
    return loaded


schema = _of_app(SchemathesisConfig.from_path(ROOT / "schemathesis.toml"))
hostile_schema = _of_app()


def _memoised(config: Any) -> None:
    """Schemathesis merges an operation's config from the file's ``[[operations]]`` blocks again
    for every case and check (a regex over every block each time): a third of the run's CPU.
    The config does not change during the run, so each answer is kept per operation and phase."""
    for name in ("phases_for", "checks_config_for", "generation_for"):
        setattr(config, name, _kept(getattr(config, name)))


def _kept(lookup: Any) -> Any:
    answers: dict[tuple[str | None, str | None], Any] = {}

    def cached(*, operation: Any = None, phase: str | None = None) -> Any:
        key = (None if operation is None else operation.label, phase)
        if key not in answers:
            kwargs = {"operation": operation} | ({} if phase is None else {"phase": phase})
            answers[key] = lookup(**kwargs)
        return answers[key]

    return cached


_memoised(schema.config)
_memoised(hostile_schema.config)
load_all_checks()
CHECKS = REGISTERED_CHECKS.get_all()
"""All of them, as ``--checks all``."""


TOKEN = generate_token()
"""The run's clinician token. Schemathesis puts it into the example cases it builds when the
tests are collected, before the suite's database exists on PostgreSQL; the fixture below
stores it when the test starts."""

EDGE_TIMES = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]
HOSTILE_TEXT = [
    "nul\u0000inside",
    *EDGE_TIMES,
    "ge9999-12-31T23:59:59-14:00",
    "lt0001-01-01T00:00:00+14:00",
]


def _with_offset(moment: datetime, minutes: int) -> str:
    return moment.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat()


ANY_TIME = st.builds(_with_offset, st.datetimes(), st.integers(-14 * 60, 14 * 60)).map(str)
"""Any moment of years 1..9999 with any offset up to ±14:00 (some have no UTC form)."""


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
        replaced, st.sampled_from(names), st.sampled_from(HOSTILE_TEXT) | ANY_TIME
    )


@hostile_schema.hook
def flatmap_query(_ctx: Any, query: dict[str, Any] | None) -> st.SearchStrategy[Any]:
    return _hostile(query)


@hostile_schema.hook
def flatmap_body(_ctx: Any, body: Any) -> st.SearchStrategy[Any]:
    return _hostile(body)


@pytest.fixture(scope="module")
def clinician_token(database_url: str) -> str:
    db = Database(make_engine(URL))

    def create(conn: Any) -> None:
        org_id = ensure_organisation(conn, "schemathesis")
        token_id, _ = issue_token(conn, organisation_id=org_id, role=Role.clinician)
        conn.execute(
            text("UPDATE api_tokens SET token_hash = :h WHERE id = :i"),
            {"h": hash_token(TOKEN), "i": token_id},
        )

    db.run_write(create)
    db.dispose()
    return TOKEN


@pytest.fixture(scope="module")
def session() -> Iterator[asgi.ASGIClient]:
    """One in-process client for every case (Schemathesis otherwise makes one per request and
    reads the proxy and netrc settings of the environment each time). It keeps no cookies, so
    each request stands alone as it would with a client of its own."""
    with asgi.get_client(app) as client:
        client.trust_env = False
        client.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        yield client


@hostile_schema.auth()
@schema.auth()
class ClinicianToken:
    """The run's credentials, as the CLI's ``-H "Authorization: Bearer ..."``: Schemathesis
    knows them for auth, so it can also leave them out on purpose (``ignored_auth``)."""

    def get(self, case: Any, ctx: Any) -> str:
        return TOKEN

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@build_lazily
@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_openapi_contract(case: Any, clinician_token: str, session: asgi.ASGIClient) -> None:
    case.call_and_validate(checks=CHECKS, session=session)


@build_lazily
@hostile_schema.parametrize()
@settings(
    max_examples=10,
    # No explicit phase: Schemathesis' examples and coverage cases are the contract's own, run
    # with all its checks above (the hooks reshape generated cases only)
    phases=[Phase.generate, Phase.shrink],
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_hostile_values(case: Any, clinician_token: str, session: asgi.ASGIClient) -> None:
    case.call_and_validate(
        checks=[not_a_server_error, response_schema_conformance, ignored_auth], session=session
    )
