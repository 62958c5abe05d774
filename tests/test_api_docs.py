"""/docs works without internet: every script, style sheet and image it references is served by
this service itself (issue #10: the page rendered blank without a CDN)."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

EXPECTED_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
}


class _References(HTMLParser):
    """Every URL an HTML page makes a browser load: src, href, and URLs in inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            for quote in ("'", '"', "`"):
                for piece in data.split(quote)[1::2]:
                    if piece.startswith(("/", "http:", "https:", "//")):
                        self.urls.append(piece)


def test_the_docs_page_references_only_its_own_assets(client):
    page = "/docs"
    resp = client.get(page)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    parser = _References()
    parser.feed(resp.text)
    assert parser.urls, "the page loads nothing: the parser found no references"
    assets = []
    for url in parser.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{page} loads {url} from elsewhere"
        assert url.startswith("/"), url
        assets.append(parts.path)
    assert "/openapi.json" in assets
    for path in assets:
        if path == "/openapi.json" or path.endswith("oauth2-redirect"):
            continue
        asset = client.get(path)
        assert asset.status_code == 200, path
        suffix = path[path.rfind(".") :]
        media_type = asset.headers["content-type"].split(";")[0]
        assert media_type in EXPECTED_TYPES[suffix], (path, media_type)
        assert len(asset.content) > 1000, path  # the real bundle, not an empty placeholder


def test_swagger_ui_bundle_is_the_real_thing(client):
    """The script the page loads defines SwaggerUIBundle, which the page's inline script calls."""
    page = client.get("/docs").text
    assert "SwaggerUIBundle(" in page
    bundle = client.get("/docs/assets/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.text
    assert bundle.headers["x-content-type-options"] == "nosniff"


def test_the_docs_page_may_load_from_its_own_origin_only(client):
    policy = client.get("/docs").headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    assert directives["default-src"] == "'self'"
    for name in ("script-src", "style-src", "img-src"):
        sources = directives[name].split()
        assert "'self'" in sources
        assert not [s for s in sources if s.startswith(("http", "*")) or s.endswith(":*")], name


def test_redoc_is_not_served(client):
    """ReDoc's bundle fetches its logo from a CDN: it is not offered at all."""
    assert client.get("/redoc").status_code == 404


def test_the_docs_are_not_api_operations(client):
    doc = client.get("/openapi.json").json()
    assert not [path for path in doc["paths"] if path.startswith(("/docs", "/redoc"))]
