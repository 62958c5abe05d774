"""The committed OpenAPI document is the app's own (regenerate: `kap-outcomes openapi`)."""

from __future__ import annotations

import json

from kap_outcomes.openapi_doc import render

from .conftest import ROOT


def test_committed_openapi_matches_app() -> None:
    committed = (ROOT / "openapi" / "openapi.json").read_text()
    assert json.loads(committed) == json.loads(render()), (
        "openapi/openapi.json is stale: run `kap-outcomes openapi`"
    )


def test_every_operation_documents_its_problems() -> None:
    doc = json.loads(render())
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if path in ("/healthz", "/readyz", "/.well-known/smart-configuration"):
                continue
            if path == "/oauth/token":  # OAuth 2.0 errors (RFC 6749 §5.2), not problems
                assert {"400", "401"} <= set(op["responses"]), (method, path)
                continue
            assert "401" in op["responses"], (method, path)
            assert "422" in op["responses"], (method, path)
