"""HTTP routes for the organisation's policy (admin only)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Response

from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.auth.dependencies import AdminDep, DbDep
from kap_outcomes.http import PROBLEMS
from kap_outcomes.policy import service
from kap_outcomes.policy.models import PolicyPublic

router = APIRouter(
    prefix="/v1/policy", tags=["policy"], responses=PROBLEMS, route_class=AuditedRoute
)

_PRECONDITIONS: dict[int | str, dict[str, Any]] = {
    412: PROBLEMS[404] | {"description": "If-Match does not name the current version"},
    428: PROBLEMS[404] | {"description": "If-Match is missing, or * (it names no version)"},
}

_EXAMPLE = {"induction_doses": 4, "phq9": {"rise_from_nadir": 4}}


@router.get("")
async def get_policy(principal: AdminDep, db: DbDep, response: Response) -> PolicyPublic:
    """The policy in force: version 0 (`default`, the documented values) until one is stored."""
    policy = await db.read(partial(service.get_policy, principal=principal))
    response.headers["ETag"] = service.etag(policy.version)
    return policy


@router.put("", responses=_PRECONDITIONS)
async def replace_policy(
    principal: AdminDep,
    db: DbDep,
    response: Response,
    document: Annotated[
        dict[str, Any],
        Body(
            description=(
                "A PolicyDocument; every field is optional and one left out takes its "
                "documented default. Unknown fields and nonsensical values are a 422."
            ),
            examples=[_EXAMPLE],
        ),
    ],
    if_match: Annotated[str | None, Header(max_length=200)] = None,
) -> PolicyPublic:
    """Store a new version of the whole policy (old versions are kept)."""
    policy = await db.write(
        partial(service.replace_policy, principal=principal, document=document, if_match=if_match)
    )
    response.headers["ETag"] = service.etag(policy.version)
    return policy
