"""Bulk Data export routes (``$export``, status, files) and the FHIR Group resource.

Kick-off at system, Patient and Group level answers 202 with ``Content-Location``: the status
URL under ``{FHIR base}/bulk/{export id}``, which answers 202 (``X-Progress``,
``Retry-After``) while the worker writes, then 200 with the manifest. Only staff of the
organisation that asked may follow an export or read its files.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from email.utils import format_datetime
from functools import partial
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.auth.dependencies import staff_principal
from kap_outcomes.bulk import service
from kap_outcomes.bulk.runner import remove_files
from kap_outcomes.calling import Caller, StaffCaller
from kap_outcomes.creating import Create, Creation, FhirResource
from kap_outcomes.errors import not_found
from kap_outcomes.fhir import search
from kap_outcomes.fhir.outcome import FHIR_MEDIA_TYPE, operation_outcome
from kap_outcomes.fhir.router import (
    BASE,
    RESOURCE_SCHEMAS,
    FhirId,
    FhirResponse,
    Prefer,
    resource_schema,
)
from kap_outcomes.http import DOCUMENTED_SCHEMAS, fhir_base, problems, settings_of, with_headers

router = APIRouter(
    prefix=BASE,
    tags=["fhir-bulk"],
    default_response_class=FhirResponse,
    route_class=AuditedRoute,
)

RESOURCE_SCHEMAS["Group"] = resource_schema(
    "Group",
    "FHIR R4 Group: a clinic-defined cohort of its patients (type person, actual)",
)
_TYPES = "|".join(service.EXPORT_TYPES)
ExportPrefer = Annotated[
    str,
    Header(
        alias="Prefer",
        max_length=256,
        description="``respond-async`` (required); ``handling=lenient`` ignores parameters "
        "this server does not support instead of refusing them.",
    ),
]
TypeParam = Annotated[
    list[str] | None,
    Query(
        alias="_type",
        max_length=8,
        description=f"Resource types to export, comma-separated ({', '.join(service.EXPORT_TYPES)}"
        "); all of them when absent.",
    ),
]
SinceParam = Annotated[
    str | None,
    Query(
        alias="_since",
        max_length=40,
        description="A FHIR instant: only resources changed after it (``meta.lastUpdated``).",
    ),
]
OutputFormat = Annotated[
    str | None,
    Query(
        alias="_outputFormat",
        description="``application/fhir+ndjson`` (the default; ``application/ndjson`` and "
        "``ndjson`` mean the same).",
    ),
]
ExportId = Annotated[str, Path(min_length=36, max_length=36, pattern=r"^[0-9a-f\-]{36}$")]
FileName = Annotated[str, Path(pattern=rf"^({_TYPES})\.ndjson$", max_length=40)]

_OUTCOME = {"$ref": "#/components/schemas/OperationOutcome"}
_KICKED_OFF: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Accepted: the export is queued; poll the status URL in "
        "`Content-Location`. The body is an informational OperationOutcome.",
        "content": {FHIR_MEDIA_TYPE: {"schema": _OUTCOME}},
    }
    | with_headers("Content-Location"),
    **problems(
        (
            400,
            "Prefer: respond-async is missing, or a parameter is unknown, unsupported or not valid",
        ),
    ),
}
MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Bulk Data manifest: one NDJSON file per exported resource type",
    "required": [
        "transactionTime",
        "request",
        "requiresAccessToken",
        "output",
        "error",
    ],
    "properties": {
        "transactionTime": {"type": "string", "format": "date-time"},
        "request": {"type": "string", "description": "The kick-off URL"},
        "requiresAccessToken": {"type": "boolean", "const": True},
        "output": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "url", "count"],
                "properties": {
                    "type": {"type": "string", "enum": list(service.EXPORT_TYPES)},
                    "url": {"type": "string", "format": "uri"},
                    "count": {"type": "integer", "minimum": 1},
                },
            },
        },
        "error": {"type": "array", "maxItems": 0, "items": {}},
    },
}
DOCUMENTED_SCHEMAS["BulkManifest"] = MANIFEST_SCHEMA
DOCUMENTED_SCHEMAS["Ndjson"] = {
    "type": "string",
    "description": "FHIR NDJSON: one resource of the file's type per line, each line ending "
    "with a newline",
}
_STATUS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Completed: the manifest (the files need the same bearer token)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BulkManifest"}}},
    }
    | with_headers("Expires"),
    202: {"description": "In progress"} | with_headers("X-Progress", "Retry-After"),
    **problems((500, "The export failed (an OperationOutcome says why)")),
}
_CANCELLED: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Cancelled and deleted (a finished export's files with it)",
        "content": {FHIR_MEDIA_TYPE: {"schema": _OUTCOME}},
    }
}
_FILE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "One resource per line (FHIR NDJSON), streamed",
        "content": {service.NDJSON_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Ndjson"}}},
    }
}


class NdjsonResponse(StreamingResponse):
    media_type = service.NDJSON_MEDIA_TYPE


@dataclass(frozen=True, slots=True)
class KickOff:
    """A ``$export`` kick-off at any level: queue the export, answer 202 with its status URL."""

    request: Request
    staff: Caller
    prefer: str

    async def queue(self, level: str, path: str, group_id: str | None = None) -> Response:
        wanted = service.read_kickoff(
            self.request.query_params.multi_items(),
            prefer=self.prefer,
            accept=self.request.headers.get("accept"),
        )
        base = fhir_base(self.request)
        query = self.request.url.query
        queued = await self.staff.write(
            service.kick_off,
            request=wanted,
            level=level,
            group_id=group_id,
            request_url=f"{base}/{path}" + (f"?{query}" if query else ""),
        )
        body = operation_outcome(
            [
                {
                    "severity": "information",
                    "code": "informational",
                    "diagnostics": "The export is queued; poll the URL in Content-Location.",
                }
            ]
        )
        return FhirResponse(
            body,
            status_code=202,
            headers={"Content-Location": f"{base}/{service.STATUS_PATH}/{queued.id}"},
        )


async def _kick_off_request(
    request: Request,
    staff: StaffCaller,
    prefer: ExportPrefer,
    types: TypeParam = None,
    since: SinceParam = None,
    output_format: OutputFormat = None,
) -> KickOff:
    """The kick-off parameters, declared once for the three levels (OpenAPI, FastAPI's
    checks); :func:`service.read_kickoff` reads them from the query."""
    return KickOff(request, staff, prefer)


ExportKickOff = Annotated[KickOff, Depends(_kick_off_request)]


@router.get("/$export", status_code=202, responses=_KICKED_OFF)
async def fhir_export_system(kick_off: ExportKickOff) -> Response:
    """Bulk export of the organisation's data: every exported type, all of its patients."""
    return await kick_off.queue("system", "$export")


@router.get("/Patient/$export", status_code=202, responses=_KICKED_OFF)
async def fhir_export_patients(kick_off: ExportKickOff) -> Response:
    """Bulk export of all the organisation's patients and their data (Patient compartment)."""
    return await kick_off.queue("patient", "Patient/$export")


@router.get("/Group/{group_id}/$export", status_code=202, responses=_KICKED_OFF)
async def fhir_export_group(group_id: FhirId, kick_off: ExportKickOff) -> Response:
    """Bulk export of one group's members and their data."""
    return await kick_off.queue("group", f"Group/{group_id}/$export", group_id)


@router.get("/bulk/{export_id}", responses=_STATUS, response_class=JSONResponse)
async def fhir_export_status(request: Request, export_id: ExportId, staff: StaffCaller) -> Response:
    """The export's status: 202 while it runs, 200 with the manifest once done."""
    found = await staff.read(service.status, export_id=export_id, base=fhir_base(request))
    if found.manifest is None:
        return Response(
            status_code=202,
            headers={
                "X-Progress": found.progress or "in progress",
                "Retry-After": str(service.RETRY_AFTER_S),
            },
        )
    headers = {}
    if found.expires_at is not None:
        headers["Expires"] = format_datetime(found.expires_at, usegmt=True)
    return JSONResponse(found.manifest, headers=headers)


@router.delete("/bulk/{export_id}", status_code=202, responses=_CANCELLED)
async def fhir_export_cancel(
    request: Request, export_id: ExportId, staff: StaffCaller
) -> FhirResponse:
    """Cancel an export (a running one stops), or delete a finished one and its files."""
    deleted = await staff.write(service.cancel, export_id=export_id)
    await anyio.to_thread.run_sync(remove_files, settings_of(request).export_dir, deleted)
    body = operation_outcome(
        [
            {
                "severity": "information",
                "code": "informational",
                "diagnostics": "Deleted.",
            }
        ]
    )
    return FhirResponse(body, status_code=202)


@router.get("/bulk/{export_id}/{file_name}", responses=_FILE, response_class=NdjsonResponse)
async def fhir_export_file(
    request: Request,
    export_id: ExportId,
    file_name: FileName,
    staff: StaffCaller,
) -> Response:
    """One file of a completed export (``{resource type}.ndjson``), streamed."""
    path = await staff.read(
        service.output_file,
        export_id=export_id,
        resource_type=file_name.removesuffix(".ndjson"),
        root=settings_of(request).export_dir,
    )
    try:
        handle = await anyio.to_thread.run_sync(path.open, "rb")
    except FileNotFoundError:  # expired and swept since the row was read
        raise not_found("Export file") from None

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while chunk := await anyio.to_thread.run_sync(handle.read, 1 << 16):
                yield chunk
        finally:
            handle.close()

    return NdjsonResponse(chunks())


# Groups -----------------------------------------------------------------------------------

_GROUP_SCHEMA = {"$ref": "#/components/schemas/Group"}
_GROUP_CREATED: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "Created: the Group with its members",
        "content": {FHIR_MEDIA_TYPE: {"schema": _GROUP_SCHEMA}},
    }
    | with_headers("Location", "ETag"),
    **problems((400, "The body is not a JSON Group resource")),
}


CREATE_GROUP = Create(FhirResource, auth=staff_principal, document_body=False)


@router.post(
    "/Group",
    status_code=201,
    responses=_GROUP_CREATED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                FHIR_MEDIA_TYPE: {"schema": _GROUP_SCHEMA},
                "application/json": {"schema": _GROUP_SCHEMA},
            },
        }
    },
)
async def fhir_create_group(
    new: Annotated[Creation[FhirResource], Depends(CREATE_GROUP)],
) -> Response:
    """Define a cohort: ``{"resourceType": "Group", "type": "person", "actual": true, "name":
    …, "member": [{"entity": {"reference": "Patient/{id}"}}]}`` (the organisation's own
    patients, at most 10,000). Export it with ``GET /Group/{id}/$export``."""
    base = fhir_base(new.request)

    def headers(group: Mapping[str, Any]) -> dict[str, str]:
        return {"Location": f"{base}/Group/{group['id']}/_history/1", "ETag": 'W/"1"'}

    return await new.respond(
        partial(service.create_group, principal=new.principal, document=new.data.document),
        headers,
        media_type=FHIR_MEDIA_TYPE,
    )


@router.get(
    "/Group/{group_id}",
    responses=problems(
        ok={
            "description": "The Group with its members",
            "content": {FHIR_MEDIA_TYPE: {"schema": _GROUP_SCHEMA}},
        }
        | with_headers(optional=("ETag",))
    ),
)
async def fhir_read_group(group_id: FhirId, staff: StaffCaller) -> FhirResponse:
    resource = await staff.read(service.read_group, group_id=group_id)
    return FhirResponse(resource, headers={"ETag": 'W/"1"'})


@router.get(
    "/Group",
    responses=problems(
        (400, "A search parameter is not valid"),
        ok={
            "description": "A searchset Bundle of Groups, without their members (SUBSETTED)",
            "content": {FHIR_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Bundle"}}},
        },
    ),
)
async def fhir_search_groups(
    request: Request,
    staff: StaffCaller,
    name: Annotated[list[str] | None, Query(max_length=16)] = None,
    ids: Annotated[list[str] | None, Query(alias="_id", max_length=16)] = None,
    prefer: Prefer = None,
) -> FhirResponse:
    """The organisation's groups by ``name`` or ``_id`` (newest first, at most 500)."""
    query = search.read_query(
        request.query_params.multi_items(),
        service.GROUP_SEARCH,
        strict=search.strict_handling(request.headers.get("prefer")),
    )
    return FhirResponse(
        await staff.read(service.search_groups, query=query, base=fhir_base(request))
    )
