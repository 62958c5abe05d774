"""HTTP routes for the organisation's policy (admin only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Response
from pydantic import WithJsonSchema

from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.calling import AdminCaller
from kap_outcomes.http import DOCUMENTED_SCHEMAS, problems, with_headers
from kap_outcomes.policy import service
from kap_outcomes.policy.models import PolicyDocument, PolicyPublic

router = APIRouter(prefix="/v1/policy", tags=["policy"], route_class=AuditedRoute)

_PRECONDITIONS = problems(
    (412, "If-Match does not name the current version"),
    (428, "If-Match is missing, or * (it names no version)"),
    ok=with_headers("ETag"),
)

_EXAMPLE = {"induction_doses": 4, "phq9": {"rise_from_nadir": 4}}


def _policy_change() -> dict[str, Any]:
    """PolicyDocument with every field optional (a PUT body: a field left out takes its
    documented default)."""
    schema = PolicyDocument.model_json_schema(ref_template="#/components/schemas/{model}Change")
    for definition in (schema, *schema.get("$defs", {}).values()):
        definition.pop("required", None)
    for name, definition in schema.pop("$defs", {}).items():
        DOCUMENTED_SCHEMAS[f"{name}Change"] = definition | {"title": f"{name}Change"}
    return schema | {
        "title": "PolicyChange",
        "description": "A PolicyDocument; every field is optional and one left out takes its "
        "documented default. Unknown fields and nonsensical values are a 422.",
        "examples": [_EXAMPLE],
    }


DOCUMENTED_SCHEMAS["PolicyChange"] = _policy_change()


@router.get("", responses=problems(ok=with_headers("ETag")))
async def get_policy(admin: AdminCaller, response: Response) -> PolicyPublic:
    """The policy in force: version 0 (`default`, the documented values) until one is stored."""
    policy = await admin.read(service.get_policy)
    response.headers["ETag"] = service.etag(policy.version)
    return policy


@router.put("", responses=_PRECONDITIONS)
async def replace_policy(
    admin: AdminCaller,
    response: Response,
    document: Annotated[
        dict[str, Any],
        Body(),
        WithJsonSchema({"$ref": "#/components/schemas/PolicyChange"}),
    ],
    if_match: Annotated[
        str | None,
        Header(alias="If-Match", max_length=200, description="The ETag of the version replaced"),
    ] = None,
) -> PolicyPublic:
    """Store a new version of the whole policy (old versions are kept)."""
    policy = await admin.write(service.replace_policy, document=document, if_match=if_match)
    response.headers["ETag"] = service.etag(policy.version)
    return policy
