"""How a /v1 route runs its use case: for its caller, in one transaction.

A route takes one dependency that says who may call it and hands it the use case (a function
of a connection, ``principal=`` and its own arguments)::

    async def list_courses(patient_id: ResourceId, staff: StaffCaller) -> list[CoursePublic]:
        return await staff.read(service.list_courses, patient_id=patient_id)

A versioned resource (:class:`Versions`) answers a read with the ``ETag`` of the version it
shows; a change takes ``If-Match`` (the ``ETag`` of the version it changes) and answers with
the new version's ``ETag``::

    async def amend_session(session_id: ResourceId, data: SessionAmend, change: StaffChange):
        return await change.write(corrections.amend_session, session_id=session_id, data=data)

Who may is an ordinary dependency (``current_principal``, ``staff_principal`` …), the
database is ``get_db``: ``app.dependency_overrides`` reaches both.
"""

# No ``from __future__ import annotations``: FastAPI reads the dependencies' annotations,
# which name the ``auth`` of the factories below (a closure, not a module global).

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Depends, Header, Response

from kap_outcomes.auth.dependencies import (
    admin_principal,
    current_principal,
    get_db,
    staff_principal,
)
from kap_outcomes.auth.principal import Principal
from kap_outcomes.db import Database
from kap_outcomes.preconditions import etag

T = TypeVar("T")

IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=200,
        description="The ETag of the version changed (from GET, or from the last change)",
    ),
]


@dataclass(slots=True)
class Caller:
    """Run a use case for ``principal``, in a read or a write transaction."""

    principal: Principal
    db: Database

    async def read(self, use_case: Callable[..., T], **args: Any) -> T:
        return await self.db.read(partial(use_case, principal=self.principal, **args))

    async def write(self, use_case: Callable[..., T], **args: Any) -> T:
        return await self.db.write(partial(use_case, principal=self.principal, **args))


class HasVersion(Protocol):
    @property
    def version(self) -> int: ...


V = TypeVar("V", bound=HasVersion)


@dataclass(slots=True)
class Versions:
    """Read or change one versioned resource for ``principal``; the answer carries its ETag."""

    principal: Principal
    db: Database
    response: Response
    if_match: str | None = None

    async def read(self, use_case: Callable[..., V], **args: Any) -> V:
        return self._tagged(await self.db.read(partial(use_case, principal=self.principal, **args)))

    async def write(self, use_case: Callable[..., V], **args: Any) -> V:
        """Run the change (a unit of work) with the request's ``If-Match``."""
        unit = partial(use_case, principal=self.principal, if_match=self.if_match, **args)
        return self._tagged(await self.db.write(unit))

    def _tagged(self, found: V) -> V:
        self.response.headers["ETag"] = etag(found.version)
        return found


Auth = Callable[..., Any]


def caller_of(auth: Auth) -> Callable[..., Awaitable[Caller]]:
    async def caller(
        principal: Annotated[Principal, Depends(auth)], db: Annotated[Database, Depends(get_db)]
    ) -> Caller:
        return Caller(principal, db)

    return caller


def _reading(auth: Auth) -> Callable[..., Awaitable[Versions]]:
    async def reading(
        response: Response,
        principal: Annotated[Principal, Depends(auth)],
        db: Annotated[Database, Depends(get_db)],
    ) -> Versions:
        return Versions(principal, db, response)

    return reading


def _changing(auth: Auth) -> Callable[..., Awaitable[Versions]]:
    async def changing(
        response: Response,
        principal: Annotated[Principal, Depends(auth)],
        db: Annotated[Database, Depends(get_db)],
        if_match: IfMatch = None,
    ) -> Versions:
        return Versions(principal, db, response, if_match)

    return changing


AnyCaller = Annotated[Caller, Depends(caller_of(current_principal))]
StaffCaller = Annotated[Caller, Depends(caller_of(staff_principal))]
AdminCaller = Annotated[Caller, Depends(caller_of(admin_principal))]
PrincipalRead = Annotated[Versions, Depends(_reading(current_principal))]
StaffRead = Annotated[Versions, Depends(_reading(staff_principal))]
StaffChange = Annotated[Versions, Depends(_changing(staff_principal))]
AdminRead = Annotated[Versions, Depends(_reading(admin_principal))]
AdminChange = Annotated[Versions, Depends(_changing(admin_principal))]
