"""Bulk export use cases: kick-off, status, cancel, file access; patient groups.

Bulk Data Access IG 2.0 (https://hl7.org/fhir/uv/bulkdata/): a kick-off with
``Prefer: respond-async`` queues an export and answers 202 with the status URL; the worker
writes one NDJSON file per resource type (:mod:`kap_outcomes.bulk.runner`); the status URL
answers 202 while it runs and 200 with the manifest once done.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from pydantic import RootModel
from sqlalchemy import Connection

from kap_outcomes.audit import service as audit
from kap_outcomes.auth.service import Principal
from kap_outcomes.bulk import repository
from kap_outcomes.bulk.models import BulkExport
from kap_outcomes.db import new_id, utcnow
from kap_outcomes.errors import not_found, too_many_requests
from kap_outcomes.fhir import search
from kap_outcomes.fhir.outcome import fhir_error, unsupported_parameter
from kap_outcomes.fhir.resources import instant

EXPORT_TYPES = ("Patient", "QuestionnaireResponse", "Observation", "Condition")
"""What an export writes, in this order: every type the FHIR API serves about patients (all in
the Patient compartment, so the same at system, Patient and Group level). Questionnaires are
definitions, not patient data: read them with ``GET /Questionnaire``."""
OUTPUT_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
NDJSON_MEDIA_TYPE = "application/fhir+ndjson"
RETRY_AFTER_S = 2
"""What the status answers in ``Retry-After`` while an export runs."""
MAX_GROUP_MEMBERS = 10_000
MAX_ACTIVE_EXPORTS = 4
"""Exports an organisation may have queued or running at once (then 429, Retry-After)."""
STATUS_PATH = "bulk"
"""Status and files live under ``{FHIR base}/bulk/{export id}``."""

_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")


def _has_preference(prefer: str | None, wanted: str) -> bool:
    return any(
        part.strip().lower().replace(" ", "") == wanted for part in re.split(r"[,;]", prefer or "")
    )


@dataclass(frozen=True, slots=True)
class ExportRequest:
    types: tuple[str, ...]
    since: datetime | None


def read_kickoff(
    params: Sequence[tuple[str, str]], *, prefer: str | None, accept: str | None
) -> ExportRequest:
    """The kick-off's headers and parameters. ``Prefer: respond-async`` is required; an
    unknown or unsupported parameter (``_typeFilter``, ``_elements``, ``patient`` …) is a
    400 unless ``Prefer: handling=lenient`` asks to ignore it."""
    if not _has_preference(prefer, "respond-async"):
        raise fhir_error(400, "invalid", "a bulk export needs Prefer: respond-async", "Prefer")
    if accept is not None and not any(
        media.split(";")[0].strip().lower()
        in ("application/fhir+json", "application/json", "*/*", "application/*", "")
        for media in accept.split(",")
    ):
        raise fhir_error(
            400, "not-supported", "the kick-off answers in application/fhir+json only", "Accept"
        )
    lenient = _has_preference(prefer, "handling=lenient")
    types: list[str] | None = None
    since: datetime | None = None
    for name, value in params:
        if name == "_outputFormat":
            # an unencoded "+" in a query string arrives as a space
            if value.replace(" ", "+") not in OUTPUT_FORMATS:
                raise fhir_error(
                    400, "not-supported", "the output format is application/fhir+ndjson", name
                )
        elif name == "_type":
            wanted = [part.strip() for part in value.split(",")]
            unknown = [t for t in wanted if t not in EXPORT_TYPES]
            if unknown and not lenient:
                shown = unknown[0][:64]
                raise fhir_error(
                    400,
                    "not-supported",
                    f"{shown!r} is not exported; _type takes {', '.join(EXPORT_TYPES)}",
                    name,
                )
            types = (types or []) + [t for t in wanted if t in EXPORT_TYPES]
        elif name == "_since":
            if since is not None:
                raise fhir_error(400, "invalid", "_since is given once", name)
            since = _instant(value, name)
        elif not lenient:
            raise unsupported_parameter(name, "$export parameter")
    chosen = EXPORT_TYPES if not types else tuple(t for t in EXPORT_TYPES if t in types)
    return ExportRequest(types=chosen, since=since)


def _instant(value: str, name: str) -> datetime:
    if _INSTANT.fullmatch(value) is None:
        raise fhir_error(400, "value", "_since is a FHIR instant, e.g. 2026-03-01T00:00:00Z", name)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise fhir_error(400, "value", "_since is not a valid instant", name) from None
    return parsed.astimezone(UTC)


# Kick-off, status, cancel, files -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Queued:
    id: str


def kick_off(
    conn: Connection,
    *,
    principal: Principal,
    request: ExportRequest,
    level: str,
    group_id: str | None,
    request_url: str,
) -> Queued:
    """Queue an export of the organisation's data (of one group's members at Group level).
    It concerns many patients, so its audit event names none: it names the export."""
    active = repository.active_exports(conn, organisation_id=principal.organisation_id)
    if active >= MAX_ACTIVE_EXPORTS:
        raise too_many_requests(
            RETRY_AFTER_S * 30,
            f"this organisation has {active} exports queued or running; wait for one to end",
        )
    if group_id is not None and (
        repository.get_group(conn, organisation_id=principal.organisation_id, group_id=group_id)
        is None
    ):
        raise not_found("Group")
    export_id = new_id()
    audit.names(export_id)
    repository.insert_export(
        conn,
        {
            "id": export_id,
            "organisation_id": principal.organisation_id,
            "requested_by": principal.token_id,
            "level": level,
            "group_id": group_id,
            "types": ",".join(request.types),
            "since": request.since,
            "request_url": request_url,
            "status": "queued",
            "attempts": 0,
            "created_at": utcnow(),
        },
    )
    return Queued(export_id)


def _export(conn: Connection, principal: Principal, export_id: str) -> BulkExport:
    """An export of the caller's organisation (any of its staff may follow it)."""
    audit.names(export_id)
    row = repository.get_export(
        conn, organisation_id=principal.organisation_id, export_id=export_id
    )
    if row is None:
        raise not_found("Export")
    return row


@dataclass(frozen=True, slots=True)
class Status:
    state: str  # in-progress | completed | failed
    progress: str | None = None
    manifest: dict[str, Any] | None = None
    expires_at: datetime | None = None


def status(conn: Connection, *, principal: Principal, export_id: str, base: str) -> Status:
    row = _export(conn, principal, export_id)
    if row.status in ("queued", "running"):
        progress = row.progress or ("queued" if row.status == "queued" else "started")
        return Status("in-progress", progress=progress)
    if row.status == "failed":
        raise fhir_error(500, "exception", row.error or "the export failed")
    outputs = orjson.loads(row.output or "[]")
    return Status(
        "completed",
        manifest={
            "transactionTime": instant(row.transaction_time),
            "request": row.request_url,
            "requiresAccessToken": True,
            "output": [
                {
                    "type": out["type"],
                    "url": f"{base}/{STATUS_PATH}/{row.id}/{out['type']}.ndjson",
                    "count": out["count"],
                }
                for out in outputs
            ],
            "error": [],
        },
        expires_at=row.expires_at,
    )


def cancel(conn: Connection, *, principal: Principal, export_id: str) -> str:
    """Delete an export: a running one stops (its worker notices at its next heartbeat), a
    finished one's files go (the caller removes the folder once this commits)."""
    row = _export(conn, principal, export_id)
    repository.delete_export(conn, export_id=row.id)
    return str(row.id)


def output_file(
    conn: Connection, *, principal: Principal, export_id: str, resource_type: str, root: Path
) -> Path:
    """The file of one type of a completed export of the caller's organisation."""
    row = _export(conn, principal, export_id)
    if row.status != "completed":
        raise not_found("Export file")
    types = {out["type"] for out in orjson.loads(row.output or "[]")}
    if resource_type not in types:
        raise not_found("Export file")
    return export_folder(root, row.id) / f"{resource_type}.ndjson"


def export_folder(root: Path, export_id: str) -> Path:
    return root / export_id


def expiry(retention_s: float, now: datetime) -> datetime:
    return now + timedelta(seconds=retention_s)


# Groups -------------------------------------------------------------------------------------

GROUP_SEARCH = search.Supported(frozenset({"_id", "name"}))
GROUP_SEARCH_LIMIT = 500
SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}
_GROUP_KEYS = frozenset({"resourceType", "id", "meta", "text", "type", "actual", "name", "member"})
_PATIENT_REFERENCE = re.compile(r"Patient/([A-Za-z0-9\-.]{1,64})")


def group_resource(row: Any, member_ids: Sequence[str] | None, quantity: int) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Group",
        "id": row.id,
        "meta": {"versionId": "1", "lastUpdated": instant(row.created_at)},
        "active": True,
        "type": "person",
        "actual": True,
        "name": row.name,
        "quantity": quantity,
    }
    if member_ids is None:
        resource["meta"]["tag"] = [SUBSETTED]
    elif member_ids:
        resource["member"] = [{"entity": {"reference": f"Patient/{p}"}} for p in member_ids]
    return resource


def _read_group_body(document: dict[str, Any]) -> tuple[str, list[str]]:
    if document.get("resourceType") != "Group":
        raise fhir_error(400, "structure", "the body is not a Group resource", "Group")
    extra = sorted(set(document) - _GROUP_KEYS)
    if extra:
        raise fhir_error(
            422, "not-supported", f"Group.{extra[0][:40]} is not supported here", "Group"
        )
    if document.get("type") != "person":
        raise fhir_error(
            422, "value", "a Group here is a group of patients (type person)", "Group.type"
        )
    if document.get("actual", True) is not True:
        raise fhir_error(422, "value", "a Group here lists actual patients", "Group.actual")
    name = document.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or "\x00" in name:
        raise fhir_error(
            422, "required", "a Group needs a name of 1 to 200 characters", "Group.name"
        )
    entries = document.get("member", [])
    if not isinstance(entries, list) or len(entries) > MAX_GROUP_MEMBERS:
        raise fhir_error(
            422, "value", f"Group.member is a list of at most {MAX_GROUP_MEMBERS}", "Group.member"
        )
    patient_ids: list[str] = []
    for index, entry in enumerate(entries):
        where = f"Group.member[{index}].entity.reference"
        entity = entry.get("entity") if isinstance(entry, dict) else None
        reference = entity.get("reference") if isinstance(entity, dict) else None
        match = _PATIENT_REFERENCE.fullmatch(reference) if isinstance(reference, str) else None
        if match is None or (isinstance(entry, dict) and entry.get("inactive") is True):
            raise fhir_error(422, "value", "a member is an active Patient/{id} reference", where)
        patient_ids.append(match.group(1))
    return name.strip(), sorted(set(patient_ids))


def create_group(
    conn: Connection, *, principal: Principal, document: dict[str, Any]
) -> RootModel[dict[str, Any]]:
    """A cohort of the organisation's own patients (another organisation's is unknown: 422):
    the Group resource, with its members."""
    name, patient_ids = _read_group_body(document)
    known = repository.patients_in_organisation(
        conn, organisation_id=principal.organisation_id, patient_ids=patient_ids
    )
    if len(known) != len(patient_ids):
        raise fhir_error(
            422, "not-found", "a member is no patient of this organisation", "Group.member"
        )
    group_id = new_id()
    values = {
        "id": group_id,
        "organisation_id": principal.organisation_id,
        "name": name,
        "created_by": principal.token_id,
        "created_at": utcnow(),
    }
    repository.insert_group(conn, values, patient_ids, principal.organisation_id)
    row = repository.get_group(conn, organisation_id=principal.organisation_id, group_id=group_id)
    return RootModel[dict[str, Any]](group_resource(row, patient_ids, len(patient_ids)))


def read_group(conn: Connection, *, principal: Principal, group_id: str) -> dict[str, Any]:
    row = repository.get_group(conn, organisation_id=principal.organisation_id, group_id=group_id)
    if row is None:
        raise not_found("Group")
    members = repository.group_member_ids(conn, group_id=row.id)
    return group_resource(row, members, len(members))


def search_groups(
    conn: Connection, *, principal: Principal, query: search.Query, base: str
) -> dict[str, Any]:
    """The organisation's groups, newest first, without their members (tagged SUBSETTED;
    read a Group for them)."""
    ids = search.intersect([set(search.alternatives(v, "_id")) for v in query.all("_id")])
    names = search.intersect([set(search.alternatives(v, "name")) for v in query.all("name")])
    rows = repository.search_groups(
        conn,
        organisation_id=principal.organisation_id,
        ids=None if ids is None else sorted(ids),
        names=None if names is None else sorted(names),
        limit=GROUP_SEARCH_LIMIT,
    )
    sizes = repository.group_sizes(conn, group_ids=[r.id for r in rows])
    return search.bundle(
        base=base,
        path="Group",
        params=query.applied,
        resources=[group_resource(r, None, sizes.get(r.id, 0)) for r in rows],
        next_cursor=None,
    )
