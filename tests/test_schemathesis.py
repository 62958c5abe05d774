"""Property-based run of the app's own OpenAPI document with Schemathesis.

Every operation gets generated requests (valid and invalid, and undeclared methods) with a
real clinician token, and every check Schemathesis has must hold (the CLI's ``--checks all``):
no 5xx, every status and header documented and conforming, schema-valid data accepted
(except what ``schemathesis.toml`` says the schema cannot state), invalid data rejected,
405 with ``Allow`` for an undeclared method, no route without auth.
"""

from __future__ import annotations

import tempfile
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS as REGISTERED_CHECKS
from schemathesis.checks import load_all_checks
from schemathesis.config import SchemathesisConfig
from sqlalchemy import text

from kap_outcomes.app import create_app
from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import ensure_organisation, issue_token
from kap_outcomes.auth.tokens import generate_token, hash_token
from kap_outcomes.config import Settings
from kap_outcomes.db import Database, make_engine
from kap_outcomes.migrate import upgrade

from .conftest import PG_URL, ROOT, TEST_SIGNING_KEY

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
    )
)
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", app, config=SchemathesisConfig.from_path(ROOT / "schemathesis.toml")
)
load_all_checks()
CHECKS = REGISTERED_CHECKS.get_all()
"""All of them, as ``--checks all``."""


TOKEN = generate_token()
"""The run's clinician token. Schemathesis puts it into the example cases it builds when the
tests are collected, before the suite's database exists on PostgreSQL; the fixture below
stores it when the test starts."""


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


@schema.auth()
class ClinicianToken:
    """The run's credentials, as the CLI's ``-H "Authorization: Bearer ..."``: Schemathesis
    knows them for auth, so it can also leave them out on purpose (``ignored_auth``)."""

    def get(self, case: Any, ctx: Any) -> str:
        return TOKEN

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_openapi_contract(case: Any, clinician_token: str) -> None:
    case.call_and_validate(checks=CHECKS)
