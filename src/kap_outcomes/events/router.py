"""HTTP route of the live feed: a page, a long-poll (``wait``) or Server-Sent Events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.auth.dependencies import DbDep, PrincipalDep
from kap_outcomes.events import service
from kap_outcomes.events.models import EventPage, EventType
from kap_outcomes.events.repository import START
from kap_outcomes.http import ID_PATTERN, Limit, settings_of

router = APIRouter(prefix="/v1/events", tags=["events"], route_class=AuditedRoute)

EVENT_STREAM = "text/event-stream"
_TYPES = ", ".join(t.value for t in EventType)


@router.get(
    "",
    response_model=EventPage,
    responses={
        200: {
            "description": (
                "A page of events, oldest first; with `Accept: text/event-stream`, a stream "
                "of Server-Sent Events (`id:` is the event's cursor, `event:` its type, "
                "`data:` the Event as JSON)."
            ),
            "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
        }
    },
)
async def list_events(
    request: Request,
    principal: PrincipalDep,
    db: DbDep,
    after: Annotated[
        str | None,
        Query(
            max_length=256,
            description="`next_cursor` of the previous answer; from the start if absent.",
        ),
    ] = None,
    types: Annotated[
        str | None,
        Query(max_length=500, description=f"Comma-separated event types: {_TYPES}."),
    ] = None,
    patient_id: Annotated[str | None, Query(max_length=36, pattern=ID_PATTERN)] = None,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=30,
            description="Seconds to wait for the first event when there is none yet (long-poll).",
        ),
    ] = 0,
    limit: Limit = 100,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=256,
            description="Where a reconnecting event stream resumes (its last `id:`).",
        ),
    ] = None,
) -> Any:
    """The organisation's events after a cursor (staff); a patient token sees only the
    `assessment.*` events of its own patient."""
    streaming = EVENT_STREAM in request.headers.get("accept", "")
    if streaming and last_event_id:
        position = service.decode_cursor(last_event_id, parameter="Last-Event-ID")
    else:
        position = service.decode_cursor(after) if after else START
    query = service.FeedQuery(position, service.parse_types(types), patient_id, limit)
    settings = settings_of(request)
    if streaming:
        service.visible(principal, query)  # a refusal is a problem document, not a stream
        return StreamingResponse(
            service.stream(
                db, principal=principal, query=query, max_s=settings.events_stream_max_s
            ),
            media_type=EVENT_STREAM,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
    return await service.long_poll(
        db, principal=principal, query=query, wait_s=min(wait, settings.events_max_wait_s)
    )
