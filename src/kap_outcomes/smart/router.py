"""HTTP routes of SMART Backend Services: client registration (admin), the token endpoint
and the discovery document (both public)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response

from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.auth.dependencies import AdminDep, DbDep, admin_principal
from kap_outcomes.calling import AdminCaller
from kap_outcomes.creating import Create, Creation, located
from kap_outcomes.http import ResourceId, problems
from kap_outcomes.links import FHIR_PATH
from kap_outcomes.pagination import Page
from kap_outcomes.smart import service
from kap_outcomes.smart.jwks import ALGORITHMS
from kap_outcomes.smart.models import (
    ClientCreate,
    ClientPublic,
    ClientUpdate,
    OAuthErrorBody,
    PublicKey,
    SmartConfiguration,
    TokenResponse,
)
from kap_outcomes.smart.remote_keys import RemoteKeySets
from kap_outcomes.smart.tokens import TOKEN_PATH, TokenIssuer

clients_router = APIRouter(prefix="/v1/clients", tags=["smart"], route_class=AuditedRoute)
oauth_router = APIRouter(tags=["smart"])

SCOPES_SUPPORTED = [
    "system/*.rs",
    "system/*.cruds",
    "system/Patient.rs",
    "system/Patient.c",
    "system/Observation.rs",
    "system/QuestionnaireResponse.rs",
    "system/QuestionnaireResponse.c",
    "system/QuestionnaireResponse.cruds",
    "system/Questionnaire.rs",
    "system/Condition.rs",
    "system/*.read",
    "system/*.write",
]
_NO_STORE = {"Pragma": "no-cache"}
"""RFC 6749 §5.1 also asks for ``Cache-Control: no-store``: the edge middleware sends that on
every response."""


KeyId = Annotated[str, Path(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._~:\-]+$")]
"""A kid in a path: the unreserved characters (a kid with others is removed by PATCH jwks)."""


def _remote(request: Request) -> RemoteKeySets:
    remote: RemoteKeySets = request.app.state.remote_keys
    return remote


REGISTER_CLIENT = Create(ClientCreate, auth=admin_principal)


@clients_router.post("", status_code=201, response_model=ClientPublic)
async def register_client(
    new: Annotated[Creation[ClientCreate], Depends(REGISTER_CLIENT)],
) -> Response:
    """Register an EHR backend (SMART Backend Services) of the caller's organisation: its
    public keys (`jwks`, or a `jwks_uri` serving them, fetched once now to check it) and the
    `system/` scopes it may request. The `client_id` goes into the backend's configuration;
    it authenticates with its private key, never a shared secret."""
    scope = await service.check_registration(new.data, _remote(new.request))
    return await new.respond(
        partial(service.insert_client, principal=new.principal, data=new.data, scope=scope),
        located("/v1/clients/{client_id}"),
    )


@clients_router.get("")
async def list_clients(admin: AdminCaller) -> Page[ClientPublic]:
    """Every backend of the organisation, newest first, revoked ones included."""
    return await admin.read(service.list_clients)


@clients_router.get("/{client_id}")
async def get_client(client_id: ResourceId, admin: AdminCaller) -> ClientPublic:
    """A registered backend (what a client's ``Location`` names), with the kids of its keys."""
    return await admin.read(service.get_client, client_id=client_id)


@clients_router.patch("/{client_id}", responses=problems(409))
async def update_client(
    client_id: ResourceId, data: ClientUpdate, principal: AdminDep, db: DbDep, request: Request
) -> ClientPublic:
    """Rename, change the scopes (from the next token on), or replace the keys: `jwks`
    replaces the whole set, `jwks_uri` moves the keys to a URL."""
    return await service.update_client(
        db, principal=principal, client_id=client_id, data=data, remote=_remote(request)
    )


@clients_router.delete("/{client_id}", status_code=204)
async def revoke_client(client_id: ResourceId, admin: AdminCaller) -> Response:
    """Revoke the backend: no more tokens, and its access tokens stop working at once. It
    stays listed, revoked."""
    await admin.write(service.revoke_client, client_id=client_id)
    return Response(status_code=204)


@clients_router.post("/{client_id}/keys", responses=problems(409))
async def add_client_key(client_id: ResourceId, key: PublicKey, admin: AdminCaller) -> ClientPublic:
    """Add a public key beside the others: assertions signed with either verify, so a
    backend moves to its new key without downtime, then the old one is removed."""
    return await admin.write(
        service.add_key, client_id=client_id, key=key.model_dump(exclude_none=True)
    )


@clients_router.delete("/{client_id}/keys/{kid}", status_code=204, responses=problems(409))
async def remove_client_key(client_id: ResourceId, kid: KeyId, admin: AdminCaller) -> Response:
    """Remove a key: assertions it signs are refused from now on (access tokens already
    issued run out within 5 minutes). The last key cannot be removed."""
    await admin.write(service.remove_key, client_id=client_id, kid=kid)
    return Response(status_code=204)


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
        issued = await service.token(db, form=form, issuer=issuer, remote=_remote(request))
    except service.OAuthError as exc:
        return JSONResponse(exc.body(), status_code=exc.status, headers=_NO_STORE)
    return Response(issued.model_dump_json(), media_type="application/json", headers=_NO_STORE)


@oauth_router.get("/.well-known/smart-configuration")
@oauth_router.get(FHIR_PATH + "/.well-known/smart-configuration", name="fhir_smart_configuration")
async def smart_configuration(request: Request) -> SmartConfiguration:
    """SMART discovery: where and how a backend service gets its access tokens. The same
    document is served at the root and under the FHIR base (where SMART clients look)."""
    issuer: TokenIssuer = request.app.state.token_issuer
    return SmartConfiguration(
        token_endpoint=issuer.token_url,
        token_endpoint_auth_methods_supported=["private_key_jwt"],
        token_endpoint_auth_signing_alg_values_supported=list(ALGORITHMS),
        grant_types_supported=["client_credentials"],
        scopes_supported=SCOPES_SUPPORTED,
        capabilities=["client-confidential-asymmetric", "permission-v2", "permission-v1"],
    )
