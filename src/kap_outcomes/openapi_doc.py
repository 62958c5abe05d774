"""The committed OpenAPI document, rendered the same way by the CLI and the check."""

from __future__ import annotations

import json

from kap_outcomes.app import create_app
from kap_outcomes.config import Settings


def render() -> str:
    app = create_app(Settings(database_url="sqlite://"))
    return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
