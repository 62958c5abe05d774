"""Liveness and readiness."""

from __future__ import annotations

import anyio
import anyio.to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from kap_outcomes.auth.dependencies import DbDep
from kap_outcomes.db import Database
from kap_outcomes.errors import unavailable
from kap_outcomes.http import problems
from kap_outcomes.migrate import schema_gap
from kap_outcomes.problems import response as problem_response

router = APIRouter(tags=["health"])

READY_TIMEOUT_S = 3.0
"""/readyz answers within this, whatever the database does (a probe must not hang)."""


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (no dependency is checked)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses=problems((503, "The database does not answer, or its schema is not at head")),
)
async def readyz(db: DbDep) -> Response:
    """The database answers and its schema is at this version's head; 503 while not."""
    detail = "The database is not reachable."
    with anyio.move_on_after(READY_TIMEOUT_S):
        # abandoned, not waited for, if the database hangs past the deadline
        unready = await anyio.to_thread.run_sync(_unready, db, abandon_on_cancel=True)
        if unready is None:
            return JSONResponse({"status": "ready"})
        detail = unready
    return problem_response(unavailable(detail), "/readyz")


def _unready(db: Database) -> str | None:
    """None when ready; else why not, as the problem's detail."""
    try:
        gap = db.probe(schema_gap)
    except Exception:
        return "The database is not reachable."
    return None if gap is None else f"{gap[0].upper()}{gap[1:]}."
