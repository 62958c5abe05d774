"""The interactive API documentation (``/docs``, Swagger UI), served with every asset from
the installed package, never from a CDN: the page works on a clinic network without internet
access and loads no third-party script next to a bearer token.

The assets are those the ``fastapi-offline`` package ships (Swagger UI 5, Apache-2.0, its
licence notice inside the file); only its static files are used. ReDoc is not offered: its
bundle fetches its logo from its vendor's CDN whatever the options. The page's own
Content-Security-Policy allows this origin only, so nothing else can load even by mistake.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")
PAGE_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
"""Swagger UI's page starts it with an inline script; everything else comes from here."""


def assets_directory() -> Path:
    """Where the installed package keeps the Swagger UI and ReDoc files."""
    return Path(str(files("fastapi_offline") / "static"))


def install(app: FastAPI, *, openapi_url: str = "/openapi.json") -> None:
    """Add ``/docs`` and its same-origin assets to ``app`` (created with ``docs_url=None,
    redoc_url=None``)."""
    directory = assets_directory()
    missing = [name for name in ASSET_FILES if not (directory / name).is_file()]
    if missing:  # a broken install: fail at start-up, not with a blank page later
        raise RuntimeError(f"API docs assets missing from {directory}: {', '.join(missing)}")
    app.mount(ASSETS_PATH, StaticFiles(directory=directory), name="api-docs-assets")
    title = f"{app.title} API"

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
            oauth2_redirect_url=OAUTH2_REDIRECT_PATH,
        )
        page.headers["Content-Security-Policy"] = PAGE_POLICY
        return page

    @app.get(OAUTH2_REDIRECT_PATH, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
