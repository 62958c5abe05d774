"""Rendering the dashboard's pages: Jinja2 templates and static assets from the package.

Every page carries its own Content-Security-Policy: scripts, styles, images and connections
from this origin only, forms posting only here, no frames. So a page loads nothing from
outside even by mistake, and an injected inline script would not run.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from markupsafe import Markup

from kap_outcomes import __version__
from kap_outcomes.charts import svg
from kap_outcomes.config import Settings
from kap_outcomes.dashboard import sessions, wording
from kap_outcomes.http import settings_of

if TYPE_CHECKING:
    from jinja2 import Environment

ASSETS_PATH = "/assets"
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _directory(name: str) -> Path:
    return Path(str(files("kap_outcomes.dashboard") / name))


@cache
def _environment() -> Environment:
    """The templates, loaded when the first page is rendered (not at every start-up)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    return Environment(
        loader=FileSystemLoader(_directory("templates")),
        autoescape=select_autoescape(("html",)),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def install(app: FastAPI) -> None:
    """Serve the dashboard's static files (CSS, the ES module) from the installed package."""
    app.mount(ASSETS_PATH, StaticFiles(directory=_directory("static")), name="dashboard-assets")


def public_origin(settings: Settings) -> str:
    parts = urlsplit(settings.public_base_url)
    return f"{parts.scheme}://{parts.netloc}"


def base_path(request: Request) -> str:
    """The path prefix of KAP_PUBLIC_BASE_URL (empty when served at the root)."""
    return urlsplit(settings_of(request).public_base_url).path.rstrip("/")


def url(request: Request, path: str) -> str:
    return base_path(request) + path


def cookie_path(request: Request) -> str:
    return base_path(request) or "/"


def local_path(request: Request, candidate: str | None) -> str:
    """Where a form goes back to: a path of the dashboard, never another site."""
    prefix = base_path(request)
    if (
        candidate
        and candidate.startswith(prefix + "/")
        and not candidate.startswith("//")
        and "\\" not in candidate
        and all(ch.isprintable() for ch in candidate)
    ):
        return candidate
    return url(request, "/")


def _chart(spec: svg.ChartSpec, id_prefix: str) -> Markup:
    return Markup(svg.render(spec, id_prefix=id_prefix))  # noqa: S704  (built escaped by svg)


def render(
    request: Request, template: str, context: dict[str, Any], status: int = 200
) -> HTMLResponse:
    secret = request.cookies.get(sessions.COOKIE_NAME, "")
    principal = getattr(request.state, "principal", None)
    zone: tzinfo | None = context.get("zone")

    def day(at: datetime | None) -> str:
        return _shown(at, zone, time=False)

    def moment(at: datetime | None) -> str:
        return _shown(at, zone, time=True)

    page = _environment().get_template(template)
    html = page.render(
        request_path=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        base=base_path(request),
        assets=base_path(request) + ASSETS_PATH,
        version=__version__,
        principal=principal,
        csrf=sessions.csrf_token(secret) if principal is not None and secret else "",
        day=day,
        moment=moment,
        chart=_chart,
        words=wording,
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    # same-origin: the dashboard's own forms carry their Origin (checked on every write);
    # no other site ever learns a dashboard address
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _shown(at: datetime | None, zone: tzinfo | None, *, time: bool) -> str:
    if at is None:
        return "–"
    local = at.astimezone(zone) if zone is not None else at
    return local.strftime("%Y-%m-%d %H:%M") if time else local.date().isoformat()
