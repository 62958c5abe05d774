"""One headless Chromium and one ``kap-outcomes serve`` for the browser modules
(tests/test_browser_cors.py, tests/test_browser_dashboard.py), started by the first of them
that runs and stopped after the last (or at the end of the session).

Both modules carry the xdist group ``GROUP``, so one worker runs both and starts these once.
Each module opens browser contexts of its own (cookies, storage and the list of requests it
checks are never shared) and works in an organisation of its own on the one server, whose
database is a SQLite file migrated here. The server lists ``allowed`` (a page server of its
own origin) in ``KAP_CORS_ORIGINS`` for the CORS module, and knows its own address as
``KAP_PUBLIC_BASE_URL`` for the dashboard's sign-in links; neither setting touches what the
other module checks (the dashboard's pages are same-origin, the CORS module reads only
relative links).

Debian's ``chromium`` package (installed by .ci/run) is driven by the Python ``playwright``
package; no browser is downloaded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .migrated import migrated_sqlite
from .processes import ServiceProcess, free_port, serve_in_thread, service_env

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
GROUP = "browser"
MODULES = ("test_browser_cors.py", "test_browser_dashboard.py")
"""The modules that use the shared world: it stops once the last of them that this session
runs has finished."""


def need_browser() -> Any:
    """The playwright module, or skip (locally) / fail (in CI) when the browser is missing."""
    in_ci = os.environ.get("CI", "").lower() == "true"
    try:
        from playwright import sync_api
    except ImportError:  # pragma: no cover - the dev extras install it
        if in_ci:
            pytest.fail("the playwright package is missing (pip install -e '.[dev]')")
        pytest.skip("the playwright package is not installed")
    if not CHROMIUM.is_file():
        if in_ci:
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    return sync_api


PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>dashboard</title></head>
<body><h1>A clinic dashboard</h1></body></html>
"""


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: Any) -> None:
        pass


class PageServer:
    """A static page on 127.0.0.1 and a port of its own: another origin than the API's."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = serve_in_thread(self.httpd)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class World:
    workdir: Path
    database_url: str
    env: dict[str, str]
    """The server's environment (for commands run against the same database)."""
    service: ServiceProcess
    allowed: PageServer
    """A page of the one origin that ``KAP_CORS_ORIGINS`` lists."""
    browser: Any
    playwright: Any
    pending: set[str] = field(default_factory=set)
    """The modules still to finish before the world stops."""
    stopped: bool = False

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        try:
            self.browser.close()
            self.playwright.stop()
        finally:
            self.service.stop()
            self.allowed.close()


_KEY = pytest.StashKey[World]()


def _start(request: pytest.FixtureRequest) -> World:
    sync_api = need_browser()
    factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
    workdir = factory.mktemp("browser")
    url = migrated_sqlite(workdir / "kap.db")
    allowed = PageServer()
    port = free_port()
    env = service_env(url) | {
        "KAP_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "KAP_CORS_ORIGINS": json.dumps([allowed.origin]),
    }
    # the server starts while the browser launches: two processes, one wait
    service = ServiceProcess(env, workdir, port=port, ready=False)
    playwright = None
    try:
        playwright = sync_api.sync_playwright().start()
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        service.wait_ready(timeout=120)
    except BaseException:
        if playwright is not None:
            playwright.stop()
        service.stop()
        allowed.close()
        raise
    return World(workdir, url, env, service, allowed, browser, playwright)


def shared(request: pytest.FixtureRequest) -> World:
    """The world, started on first use; call from a module-scoped fixture, which must call
    `release` when its module is done."""
    session = request.session
    world = session.stash.get(_KEY, None)
    if world is None or world.stopped:
        world = _start(request)
        world.pending = {
            item.nodeid.split("::")[0]
            for item in session.items
            if Path(item.nodeid.split("::")[0]).name in MODULES
        }
        session.stash[_KEY] = world
        session.addfinalizer(world.stop)  # whatever happens, at the end of the session
    return world


def release(request: pytest.FixtureRequest) -> None:
    """The calling module is done with the world: stopped if no other module is to use it."""
    world = request.session.stash.get(_KEY, None)
    if world is None:
        return
    world.pending.discard(request.node.nodeid.split("::")[0])
    if not world.pending:
        world.stop()
