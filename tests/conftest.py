"""Shared fixtures: a real database built by the real migrations, the app, and tenants.

The suite runs on a SQLite file by default and on PostgreSQL when ``KAP_TEST_DATABASE_URL``
is set. The schema is migrated once per run; tests stay independent because every test works
in an organisation of its own (the same tenant scoping that production relies on).

The whole suite (``pytest`` with no paths, as ``make test`` runs it) runs on pytest-xdist
workers, one more than the machine's cores (``-n 3 --dist loadgroup`` on two), the slowest
modules first; naming paths, ``-n 0`` or ``-p no:xdist`` runs serially (see
docs/architecture.md, "Tests"). Every worker is a session of its own: a SQLite file in its own
basetemp, or on PostgreSQL a database of its own beside the one named (``<name>_gw0``,
``<name>_gw1`` …), created when the worker starts and dropped when it ends.
"""

from __future__ import annotations

import os
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kap_outcomes.auth.roles import Role

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from kap_outcomes.config import Settings
    from kap_outcomes.db import Database

# The app, SQLAlchemy and the migrations are imported by the fixtures that use them, not here:
# xdist's controller loads this file before it starts the workers and never runs a test (the
# imports cost it ~1.3 s first), and a run of the pure clinical tests needs none of them.

PG_ADMIN_URL = os.environ.get("KAP_TEST_DATABASE_URL")
"""The PostgreSQL database named to the run: the suite's own, or the server to make them on."""
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
"""``gw0``, ``gw1`` … in a pytest-xdist worker (set before this module is imported)."""


def _worker_url(url: str, worker: str) -> str:
    from sqlalchemy.engine import make_url

    name = f"{make_url(url).database}_{worker}"
    return make_url(url).set(database=name).render_as_string(hide_password=False)


PG_URL = _worker_url(PG_ADMIN_URL, XDIST_WORKER) if PG_ADMIN_URL and XDIST_WORKER else PG_ADMIN_URL
"""The PostgreSQL database this session tests on (None on SQLite)."""
TEST_SIGNING_KEY = "kT9v2QmX7pLr4ZsW8nBc3HyD6fJg1AeU5oKi0RtN"  # outside development one is required


def _reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    from kap_outcomes.migrate import downgrade

    downgrade(url, "base")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """Test ids that name a random UUID (an unknown patient …) say ``uuid`` instead: every
    xdist worker must collect the same ids. The value itself stays random. An ``@`` is
    written ``(at)``: xdist's ``loadgroup`` reads what follows an ``@`` in a node id as the
    test's group (a URL with credentials made a group of one test, and its module ran among
    the process groups)."""
    if isinstance(val, str) and (_UUID.search(val) or "@" in val):
        return _UUID.sub("uuid", val).replace("@", "(at)")
    return None


MAX_WORKERS = 4


def default_workers() -> int:
    """Workers of a whole-suite run: one more than the cores, so that a core never idles while
    a worker waits on a process it started (a service getting ready, a delivery retried, a
    database stopped); at most ``MAX_WORKERS``, each worker collecting the suite and holding
    a database of its own. 0 (serial) on one core. Measured on a 2-core machine: three
    workers beat two and four (docs/architecture.md, "Tests")."""
    # the cores this process may run on (a cpuset or taskset narrows them), where known
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    return min(cores + 1, MAX_WORKERS) if cores >= 2 else 0


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """The whole suite (no paths named) runs on ``default_workers()`` xdist workers unless the
    command line says how to run (``-n``, ``--dist``, ``--tx``), or asks for what xdist cannot
    do (``--pdb``, ``--trace``, ``-s``), or xdist is off (``-p no:xdist``); ``-n N`` without
    ``--dist`` runs grouped too. Runs before xdist's own hook, which then sets the workers up
    as for ``-n 3 --dist loadgroup`` (on two cores)."""
    option = config.option
    if XDIST_WORKER or not config.pluginmanager.hasplugin("xdist"):
        return
    asked = option.numprocesses is not None or option.dist != "no" or option.tx
    debugging = getattr(option, "usepdb", False) or getattr(option, "trace", False)
    unsuited = debugging or option.capture == "no" or option.collectonly
    whole_suite = config.args_source == pytest.Config.ArgsSource.TESTPATHS
    if whole_suite and not (asked or unsuited) and default_workers():
        option.numprocesses = default_workers()
        option.dist = "loadgroup"
    elif option.numprocesses and option.dist == "no" and not option.tx:
        # ``-n N`` alone: xdist would share the tests out one by one (``load``), splitting the
        # groups, whose module-scoped fixtures must not live beside other modules' tests (the
        # browser's sync Playwright keeps an event loop running in the worker's thread)
        option.dist = "loadgroup"
    if option.dist == "loadgroup":
        # the groups go out in collection order (slowest first, below), not re-sorted by xdist
        # by their number of tests
        option.loadscopereorder = False


SLOW_FIRST = {
    "tests/test_schemathesis.py": 105,
    "tests/test_generated_clients.py": 24,
    # one group (tests/browser_world.py): the pair's time on both
    "tests/test_browser_dashboard.py": 20,
    "tests/test_browser_cors.py": 20,
    "tests/test_outage.py": 15,
    "tests/events/test_processes.py": 12,
    "tests/test_backup.py": 10,
    "tests/test_config_errors.py": 10,
    "tests/test_smart_http.py": 10,
    "tests/api/test_demo.py": 10,
    "tests/test_metrics.py": 9,
    "tests/test_public_links.py": 8,
    "tests/test_schema_at_head.py": 8,
    "tests/test_durability.py": 7,
    "tests/test_multi_instance.py": 6,
    "tests/test_server_process.py": 5,
    "tests/events/test_signal_watch.py": 5,
    "tests/test_scope_matrix.py": 5,
    "tests/test_setup_race.py": 5,
}
"""Seconds a module took in a serial run (main at a357819, SQLite): only the order of a
distributed run reads it. xdist hands each worker the next group in collection order, so the
long process-starting groups go first and spread over both workers while the tests that go out
one by one (Schemathesis, the ~1,600 quick ones) fill the gaps. A stale figure costs balance,
never a result."""


def _slow_first(items: list[pytest.Item]) -> None:
    """Stable sort: first the xdist groups (a group runs whole on one worker, so it must not
    be the last thing to start), heaviest first; then the other slow modules, whose tests go
    out one by one; then the rest. A module's tests stay together and in order."""

    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0]

    grouped = {module(item) for item in items if item.get_closest_marker("xdist_group")}

    def rank(item: pytest.Item) -> tuple[int, int]:
        seconds = SLOW_FIRST.get(module(item), 0)
        return (0 if module(item) in grouped else 1 if seconds else 2, -seconds)

    items.sort(key=rank)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Schemathesis names its items ``test_x[GET /v1/…]`` but gives them all the node id
    ``test_x``: each gets its name as its id here, or xdist, which tells the tests it shares
    out by id, would run one of them."""
    ids = Counter(item.nodeid for item in items)
    for item in items:
        if ids[item.nodeid] > 1 and item.parent is not None:
            # pytest 9 keeps the id as a NodeId in ``_id`` (pytest 8 gave these their names)
            item._id = item.parent.id.child(item.name)  # type: ignore[attr-defined]
    assert len({item.nodeid for item in items}) == len(items), "two tests with one node id"
    # xdist's --dist loadgroup reads a test's group after an "@" in its node id, which xdist
    # 3.8 writes to ``_nodeid``: pytest 9 reads ``_id``, so the group is written there too.
    # Collection happens in the workers, where xdist sets ``dist`` to "no" and says
    # "loadgroup" in an option of its own.
    if not _load_group(config):
        return
    for item in items:
        groups = sorted({m.args[0] for m in item.iter_markers("xdist_group") if m.args})
        if groups and "@" not in item.nodeid:
            item._id = item.parent.id.child(f"{item.name}@{'_'.join(groups)}")  # type: ignore[union-attr]
    _slow_first(items)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """(xdist, in the controller) Tell each worker whether the run is grouped: a worker parses
    the original command line, which for ``make test`` names no ``--dist`` (see above)."""
    node.workerinput["kap_loadgroup"] = node.config.getoption("dist", "no") == "loadgroup"


def _load_group(config: pytest.Config) -> bool:
    """A run under ``--dist loadgroup``: in the controller (``dist``), or in a worker (the
    controller's word, or xdist's own ``loadgroup`` option for an explicit ``--dist``)."""
    worker_input: dict[str, Any] = getattr(config, "workerinput", {})
    return bool(
        config.getoption("dist", "no") == "loadgroup"
        or config.getoption("loadgroup", False)
        or worker_input.get("kap_loadgroup", False)
    )


def _admin(statement: str) -> None:
    from sqlalchemy import create_engine, text

    assert PG_ADMIN_URL
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def _worker_database() -> Iterator[None]:
    """An xdist worker's own PostgreSQL database, there before any of its tests (some make
    scratch databases beside ``PG_URL`` without asking for ``database_url``)."""
    if not (PG_URL and PG_URL != PG_ADMIN_URL):
        yield
        return
    from sqlalchemy.engine import make_url

    name = make_url(PG_URL).database
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # left by a run that was killed
    _admin(f'CREATE DATABASE "{name}"')
    yield
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    from kap_outcomes.migrate import upgrade

    from .migrated import migrated_sqlite

    if PG_URL:
        _reset_postgres(PG_URL)
        upgrade(PG_URL)
        return PG_URL
    return migrated_sqlite(tmp_path_factory.mktemp("db") / "kap.db")


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from kap_outcomes.config import Settings

    # The suite sends many requests with one token and many 401s from one address: the abuse
    # limits are off here and tested on their own (tests/test_edge.py).
    return Settings(
        database_url=database_url,
        environment="test",
        signing_key=TEST_SIGNING_KEY,
        rate_limit_per_minute=0,
        failed_auth_per_minute=0,
        # event delivery runs where a test starts it (tests/events), so that it never adds
        # statements or rows behind another test's back
        worker_embedded=False,
        # webhook tests register receivers of their own on 127.0.0.1 (tests/events)
        webhook_allowed_networks=["127.0.0.0/8"],
        # bulk export files of the run, never in the working directory
        export_dir=tmp_path_factory.mktemp("exports"),
    )


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The machine's Redis (KAP_TEST_REDIS_URL); CI starts it, elsewhere tests skip without."""
    from .processes import REDIS_URL, redis_answers

    if not redis_answers(REDIS_URL):
        if os.environ.get("CI"):
            pytest.fail(f"Redis does not answer at {REDIS_URL} (.ci/run starts it)")
        pytest.skip(f"Redis does not answer at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own: parallel runs on one Redis never share a count."""
    return f"kap-test-{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[TestClient]:
    from kap_outcomes.app import create_app

    from .inprocess import InProcessClient

    with InProcessClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="session")
def db(database_url: str) -> Iterator[Database]:
    from kap_outcomes.db import Database, make_engine

    database = Database(make_engine(database_url))
    yield database
    database.dispose()


@dataclass
class Tenant:
    """One organisation with a token per staff role, and helpers to call the API as it."""

    org_id: str
    slug: str
    tokens: dict[Role, str]
    client: TestClient
    db: Database

    def headers(self, role: Role = Role.clinician) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def post(self, path: str, json: Any, role: Role = Role.clinician, **kw: Any) -> Any:
        return self.client.post(path, json=json, headers=self.headers(role), **kw)

    def get(self, path: str, role: Role = Role.clinician, **kw: Any) -> Any:
        return self.client.get(path, headers=self.headers(role), **kw)

    def patient(self, external_id: str | None = None) -> str:
        resp = self.post("/v1/patients", {"external_id": external_id or f"ext-{uuid.uuid4()}"})
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    def patient_token(self, patient_id: str) -> dict[str, str]:
        from kap_outcomes.auth.service import issue_token

        def create(conn: Any) -> str:
            return issue_token(
                conn, organisation_id=self.org_id, role=Role.patient, patient_id=patient_id
            )[1]

        return {"Authorization": f"Bearer {self.db.run_write(create)}"}


@pytest.fixture
def make_tenant(client: TestClient, db: Database) -> Callable[[], Tenant]:
    from kap_outcomes.auth.service import ensure_organisation, issue_token

    def make() -> Tenant:
        slug = f"org-{uuid.uuid4().hex[:12]}"

        def create(conn: Any) -> Tenant:
            org_id = ensure_organisation(conn, slug)
            tokens = {
                role: issue_token(conn, organisation_id=org_id, role=role)[1]
                for role in (Role.admin, Role.clinician, Role.integration)
            }
            return Tenant(org_id=org_id, slug=slug, tokens=tokens, client=client, db=db)

        return db.run_write(create)

    return make


@pytest.fixture
def tenant(make_tenant: Callable[[], Tenant]) -> Tenant:
    return make_tenant()


@pytest.fixture
def count_rows(db: Database) -> Callable[[str, str], int]:
    """Rows of a table that belong to an organisation (to prove nothing was stored)."""
    from sqlalchemy import text

    def count(table: str, org_id: str) -> int:
        assert table.isidentifier()
        return int(
            db.run_read(
                lambda conn: conn.execute(
                    text(f"SELECT count(*) FROM {table} WHERE organisation_id = :o"),
                    {"o": org_id},
                ).scalar_one()
            )
        )

    return count


ROOT = Path(__file__).resolve().parents[1]
