"""Liveness and readiness."""

from __future__ import annotations

import anyio
import anyio.to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from kap_outcomes.auth.dependencies import DbDep
from kap_outcomes.http import problems

router = APIRouter(tags=["health"])

READY_TIMEOUT_S = 3.0
"""/readyz answers within this, whatever the database does (a probe must not hang)."""


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (no dependency is checked)."""
    return {"status": "ok"}


@router.get("/readyz", responses=problems((503, "The database does not answer")))
async def readyz(db: DbDep) -> JSONResponse:
    """The database answers; 503 while it does not."""
    with anyio.move_on_after(READY_TIMEOUT_S):
        # abandoned, not waited for, if the database hangs past the deadline
        if await anyio.to_thread.run_sync(db.ping, abandon_on_cancel=True):
            return JSONResponse({"status": "ready"})
    return JSONResponse(
        {
            "type": "https://kap-outcomes.dev/problems/unavailable",
            "title": "Service unavailable",
            "status": 503,
            "detail": "The database is not reachable.",
            "instance": "/readyz",
        },
        status_code=503,
        media_type="application/problem+json",
        headers={"Retry-After": "2"},
    )
