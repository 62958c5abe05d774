"""``GET /metrics``: the Prometheus text format, for the monitoring system only.

With ``KAP_METRICS_TOKEN`` set it answers only ``Authorization: Bearer <that token>`` (a
wrong one is a 401, and counts as a failed authentication of the address). Without it the
route exists in development and test only: in production it is not served at all (404).
Not in the OpenAPI document: it is not part of the API that clients program against.
"""

from __future__ import annotations

import hmac

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from kap_outcomes.errors import unauthorized
from kap_outcomes.metrics.scrape import exposition

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    expected = request.app.state.settings.metrics_token
    if expected is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), expected.get_secret_value().encode()
        ):
            raise unauthorized("The metrics token is required.")
    body = await anyio.to_thread.run_sync(exposition, request.app.state.metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
