"""Corrections of any versioned record (an assessment, a care session), the steps they share.

Corrections never overwrite: amending or retracting records the next version and keeps every
earlier one (``versions.Versioned``), with who changed it, when and why. A correction names
the version it corrects (``If-Match`` with the record's ``ETag``): without it a 428, against
a newer version a 412; a retracted record takes no more corrections (409).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar, cast

from sqlalchemy import Connection
from sqlmodel import SQLModel

from kap_outcomes.audit import service as audit
from kap_outcomes.auth.service import Principal
from kap_outcomes.db import new_id, utcnow
from kap_outcomes.errors import conflict, not_found
from kap_outcomes.events.models import EventType
from kap_outcomes.events.outbox import emit
from kap_outcomes.preconditions import check_if_match, precondition_failed
from kap_outcomes.versions import Version, Versioned

RETRACTED = "entered-in-error"
"""The status of a retracted version (FHIR's entered-in-error), whatever the record."""


class Kept(Protocol):
    """What every version, current or kept, records about itself."""

    @property
    def version(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def version_at(self) -> datetime: ...
    @property
    def recorded_by(self) -> str | None: ...
    @property
    def version_reason(self) -> str | None: ...


def version_of(row: Kept) -> dict[str, Any]:
    """The fields of a history entry every record shares (``*Version`` models)."""
    return {
        "version": row.version,
        "status": row.status,
        "recorded_at": row.version_at,
        "recorded_by": row.recorded_by,
        "reason": row.version_reason,
    }


V = TypeVar("V", bound=SQLModel)


@dataclass(frozen=True)
class Corrections(Generic[V]):
    """The corrections of one kind of record: its storage and its name (which names its
    resource type and its two events, ``<noun>.amended`` and ``<noun>.retracted``)."""

    store: Versioned[V, Any]
    noun: str

    @property
    def amended(self) -> EventType:
        return EventType(f"{self.noun}.amended")

    @property
    def retracted(self) -> EventType:
        return EventType(f"{self.noun}.retracted")

    def visible(self, conn: Connection, principal: Principal, id: str, *, lock: bool = False) -> V:
        """The current version, if the caller may see it (a patient: its own only), else a
        404; the request's audit event names its patient, even on a 4xx that follows."""
        row = self.store.get(conn, organisation_id=principal.organisation_id, id=id, lock=lock)
        patient_id = None if row is None else cast(Version, row).patient_id
        if row is None or (principal.is_patient and patient_id != principal.patient_id):
            raise not_found(self.noun.capitalize())
        audit.concerns(patient_id)
        return row

    def check(self, row: Version, if_match: str | None) -> None:
        """The version named is the current one, and the record still stands."""
        check_if_match(if_match, row.version, self.noun)
        if row.status == RETRACTED:
            raise conflict(f"This {self.noun} was retracted (entered in error); record a new one.")

    def next_version(
        self, current: Version, *, status: str, principal: Principal, reason: str
    ) -> dict[str, Any]:
        """The columns every new version writes about itself."""
        return {
            "version": current.version + 1,
            "status": status,
            "version_at": utcnow(),
            "recorded_by": principal.token_id,
            "version_reason": reason,
        }

    def supersede(
        self,
        conn: Connection,
        current: Version,
        values: dict[str, Any],
        *,
        principal: Principal,
        data: dict[str, Any],
    ) -> None:
        """Keep the current version, write the next (412 if another correction got there
        first), and record the event (``data``: its payload)."""
        self.store.keep(conn, current=current, revision_id=new_id())
        if not self.store.replace(
            conn, id=current.id, expected_version=current.version, values=values
        ):
            raise precondition_failed(self.noun)
        at: datetime = values["version_at"]
        emit(
            conn,
            type=self.retracted if values["status"] == RETRACTED else self.amended,
            organisation_id=principal.organisation_id,
            patient_id=current.patient_id,
            resource_id=current.id,
            data=data,
            at=at,
        )
