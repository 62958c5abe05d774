"""Use cases on the organisation's policy: read the current version, store a new one.

Every change is a new version (1, 2, …); old versions are kept. Version 0 is the documented
defaults (clinical-rules.md), in force until an admin stores a version. The policy is a
mutable resource of the contract: its ETag is its version, and a PUT needs ``If-Match``
(missing → 428, stale → 412), so two admins cannot silently overwrite each other.

A PUT replaces the whole policy: a field left out takes its documented default, not the
value of the previous version (what was sent is the whole of what the clinic decided).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from kap_outcomes.auth.service import Principal
from kap_outcomes.clinical.policy import DEFAULT_POLICY, Policy, PolicyError, policy_from_dict
from kap_outcomes.clinical.policy import policy_to_dict as _to_dict
from kap_outcomes.db import new_id, utcnow
from kap_outcomes.errors import DomainError, FieldProblem, invalid
from kap_outcomes.events.models import EventType
from kap_outcomes.events.outbox import emit
from kap_outcomes.policy import repository
from kap_outcomes.policy.models import PolicyDocument, PolicyPublic
from kap_outcomes.preconditions import precondition_failed, precondition_required

NOUN = "policy"
DEFAULT_VERSION = "default"


def version_name(version: int) -> str:
    """`default` for version 0 (the documented values), else `v1`, `v2`, …"""
    return DEFAULT_VERSION if version == 0 else f"v{version}"


def etag(version: int) -> str:
    return f'"{version_name(version)}"'


def current_policy(conn: Connection, *, organisation_id: str) -> tuple[str, Policy]:
    """(policy_version, policy) in force for the organisation: what signals are computed with."""
    row = repository.latest(conn, organisation_id=organisation_id)
    if row is None:
        return DEFAULT_VERSION, DEFAULT_POLICY
    return version_name(row.version), policy_from_dict(row.document)


def get_policy(conn: Connection, *, principal: Principal) -> PolicyPublic:
    row = repository.latest(conn, organisation_id=principal.organisation_id)
    if row is None:
        return _public(0, DEFAULT_POLICY, created_at=None, created_by=None)
    return _public(
        row.version,
        policy_from_dict(row.document),
        created_at=row.created_at,
        created_by=row.created_by,
    )


def replace_policy(
    conn: Connection, *, principal: Principal, document: Mapping[str, Any], if_match: str | None
) -> PolicyPublic:
    """Store `document` as the next version; 422 with a pointer per nonsensical value."""
    try:
        policy = policy_from_dict(document)
    except PolicyError as exc:
        raise invalid(
            [FieldProblem(detail=detail, pointer=_pointer(path)) for path, detail in exc.problems],
            detail="The policy is not usable.",
        ) from exc
    row = repository.latest(conn, organisation_id=principal.organisation_id)
    current = 0 if row is None else row.version
    _check_precondition(if_match, current)
    now = utcnow()
    stored = repository.insert_version(
        conn,
        {
            "id": new_id(),
            "organisation_id": principal.organisation_id,
            "version": current + 1,
            "document": _to_dict(policy),
            "created_at": now,
            "created_by": principal.token_id,
        },
    )
    if not stored:  # another admin stored this version number first
        raise _stale()
    emit(
        conn,
        type=EventType.policy_changed,
        organisation_id=principal.organisation_id,
        patient_id=None,
        resource_id=version_name(current + 1),
        data={"policy_version": version_name(current + 1)},
        at=now,
    )
    return _public(current + 1, policy, created_at=now, created_by=principal.token_id)


def _check_precondition(if_match: str | None, current: int) -> None:
    """``If-Match`` must name the version replaced; ``*`` names none, so it is refused."""
    tags = (
        set() if if_match is None else {t.strip().removeprefix("W/") for t in if_match.split(",")}
    )
    if if_match is None:
        raise precondition_required(NOUN, "Send If-Match with the ETag of the policy you read.")
    if "*" in tags:
        raise precondition_required(
            NOUN, "If-Match: * names no version; send the ETag of the policy you read."
        )
    if etag(current) not in tags:
        raise _stale()


def _stale() -> DomainError:
    return precondition_failed(NOUN, "The policy has changed since you read it; read it again.")


def _pointer(path: str) -> str:
    """`phq9.mcid` → `/phq9/mcid`; the whole body (`policy`) → ``."""
    return "" if path == "policy" else "/" + path.replace(".", "/")


def _public(
    version: int, policy: Policy, *, created_at: Any, created_by: str | None
) -> PolicyPublic:
    return PolicyPublic(
        policy_version=version_name(version),
        version=version,
        document=PolicyDocument.model_validate(_to_dict(policy)),
        created_at=created_at,
        created_by=created_by,
    )
