"""Liveness and readiness."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from kap_outcomes.auth.dependencies import DbDep
from kap_outcomes.http import PROBLEMS

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (no dependency is checked)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: PROBLEMS[503]})
async def readyz(db: DbDep) -> JSONResponse:
    """The database answers; 503 while it does not."""
    if await anyio.to_thread.run_sync(db.ping):
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
