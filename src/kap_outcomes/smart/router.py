"""HTTP routes of SMART Backend Services: client registration (admin), the token endpoint
and the discovery document (both public)."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.auth.dependencies import AdminDep, DbDep
from kap_outcomes.http import ResourceId, created
from kap_outcomes.smart import service
from kap_outcomes.smart.jwks import ALGORITHMS
from kap_outcomes.smart.models import (
    ClientCreate,
    ClientPublic,
    OAuthErrorBody,
    SmartConfiguration,
    TokenResponse,
)
from kap_outcomes.smart.tokens import TOKEN_PATH, TokenIssuer

clients_router = APIRouter(prefix="/v1/clients", tags=["smart"], route_class=AuditedRoute)
oauth_router = APIRouter(tags=["smart"])

SCOPES_SUPPORTED = [
    "system/*.rs",
    "system/*.cruds",
    "system/Patient.rs",
    "system/Observation.rs",
    "system/QuestionnaireResponse.cruds",
]
_NO_STORE = {"Pragma": "no-cache"}
"""RFC 6749 §5.1 also asks for ``Cache-Control: no-store``: the edge middleware sends that on
every response."""


@clients_router.post("", status_code=201, response_model=ClientPublic)
async def register_client(data: ClientCreate, principal: AdminDep, db: DbDep) -> Response:
    """Register an EHR backend (SMART Backend Services) of the caller's organisation: its
    public keys and the `system/` scopes it may request. The `client_id` goes into the
    backend's configuration; it authenticates with its private key, never a shared secret."""
    client = await db.write(partial(service.register_client, principal=principal, data=data))
    return created(client, {"Location": f"/v1/clients/{client.client_id}"})


@clients_router.get("/{client_id}")
async def get_client(client_id: ResourceId, principal: AdminDep, db: DbDep) -> ClientPublic:
    """A registered backend (what a client's ``Location`` names); its keys are not shown."""
    return await db.read(partial(service.get_client, principal=principal, client_id=client_id))


def _oauth_error(description: str) -> dict[str, Any]:
    return {"description": description, "model": OAuthErrorBody}


_TOKEN_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": [
                        "grant_type",
                        "scope",
                        "client_assertion_type",
                        "client_assertion",
                    ],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["client_credentials"]},
                        "scope": {
                            "type": "string",
                            "examples": ["system/Patient.rs system/Observation.rs"],
                        },
                        "client_assertion_type": {
                            "type": "string",
                            "enum": [service.JWT_BEARER],
                        },
                        "client_assertion": {
                            "type": "string",
                            "description": "A JWT signed with the client's key (RS384 or ES384)",
                        },
                    },
                },
                "example": {
                    "grant_type": "client_credentials",
                    "scope": "system/Patient.rs system/Observation.rs",
                    "client_assertion_type": service.JWT_BEARER,
                    "client_assertion": "eyJhbGciOiJFUzM4NCJ9.e30.c2lnbmF0dXJl",
                },
            }
        },
    }
}


@oauth_router.post(
    TOKEN_PATH,
    response_model=TokenResponse,
    openapi_extra=_TOKEN_FORM,
    responses={
        400: _oauth_error(
            "invalid_request, invalid_grant (audience, expiry, replayed jti), invalid_scope, "
            "unsupported_grant_type"
        ),
        401: _oauth_error("invalid_client: unknown client, unregistered key, bad signature"),
    },
)
async def token(request: Request, db: DbDep) -> Response:
    """OAuth 2.0 token endpoint: `client_credentials` with a `private_key_jwt` client
    assertion (SMART Backend Services). Access tokens last at most 300 seconds; there are no
    refresh tokens: ask again with a new assertion."""
    issuer: TokenIssuer = request.app.state.token_issuer
    try:
        form = service.parse_form(await request.body(), request.headers.get("content-type", ""))
        issued = await db.write(partial(service.exchange, form=form, issuer=issuer))
    except service.OAuthError as exc:
        return JSONResponse(exc.body(), status_code=exc.status, headers=_NO_STORE)
    return Response(issued.model_dump_json(), media_type="application/json", headers=_NO_STORE)


@oauth_router.get("/.well-known/smart-configuration")
async def smart_configuration(request: Request) -> SmartConfiguration:
    """SMART discovery: where and how a backend service gets its access tokens."""
    issuer: TokenIssuer = request.app.state.token_issuer
    return SmartConfiguration(
        token_endpoint=issuer.token_url,
        token_endpoint_auth_methods_supported=["private_key_jwt"],
        token_endpoint_auth_signing_alg_values_supported=list(ALGORITHMS),
        grant_types_supported=["client_credentials"],
        scopes_supported=SCOPES_SUPPORTED,
        capabilities=["client-confidential-asymmetric", "permission-v2"],
    )
