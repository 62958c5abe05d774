"""The dashboard's pages and forms (HTML, not part of the OpenAPI document).

Every page calls the same use cases as ``/v1`` with the principal of the browser's session,
through :class:`AuditedRoute`: the same role rules, the same 404 across organisations and the
same audit events. A page without a live session redirects to the sign-in page; a form
without the session's CSRF token, or from another origin, is refused with a 403.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from kap_outcomes.alerts import service as alerts_service
from kap_outcomes.alerts.models import AlertAction
from kap_outcomes.audit.route import AuditedRoute
from kap_outcomes.audit.service import CURRENT as CURRENT_AUDIT
from kap_outcomes.auth.service import Principal
from kap_outcomes.caseload import service as caseload_service
from kap_outcomes.dashboard import pages, sessions, views
from kap_outcomes.db import Database
from kap_outcomes.errors import DomainError
from kap_outcomes.events import service as events_service
from kap_outcomes.http import ResourceId, settings_of

router = APIRouter(route_class=AuditedRoute, include_in_schema=False)

PAGE_SIZE = 25
BOOSTER_FILTERS = (
    "consider_booster",
    "watch",
    "stable",
    "pending",
    "in_induction",
    "not_applicable",
)
LIVE_TYPES = "alert.opened,alert.acknowledged,alert.resolved,signal.changed,assessment.submitted"


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def _principal(request: Request) -> Principal | None:
    """The session's staff member, made the request's principal (as the API's bearer
    dependency does), or None."""
    secret = request.cookies.get(sessions.COOKIE_NAME, "")
    if not secret:
        return None
    principal = await _db(request).read_small(partial(sessions.session_principal, secret=secret))
    if principal is None:
        return None
    request.state.principal = principal
    scope = CURRENT_AUDIT.get()
    if scope is not None:
        scope.principal = principal
    return principal


def _to_signin(request: Request) -> RedirectResponse:
    response = RedirectResponse(pages.url(request, "/signin"), status_code=303)
    response.delete_cookie(sessions.COOKIE_NAME, path=pages.cookie_path(request))
    return response


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form (the body size is bounded by the app's middleware)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _same_origin(request: Request) -> bool:
    """An unsafe request names this site as its origin (or sends none: then SameSite and the
    CSRF token decide)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    own = {pages.public_origin(settings_of(request))}
    host = request.headers.get("host")
    if host:
        own.add(f"{request.url.scheme}://{host}")
    return origin in own


def _refused(request: Request, detail: str, status: int = 403) -> HTMLResponse:
    return pages.render(request, "error.html", {"title": "Refused", "detail": detail}, status)


async def _checked_form(
    request: Request,
) -> tuple[Principal, dict[str, str]] | Response:
    """The principal and form of a write, or the answer refusing it."""
    if not _same_origin(request):
        return _refused(request, "This form was sent from another site.")
    principal = await _principal(request)
    if principal is None:
        return _to_signin(request)
    form = await _form(request)
    secret = request.cookies.get(sessions.COOKIE_NAME, "")
    if not sessions.csrf_ok(secret, form.get("csrf")):
        return _refused(request, "This form has expired or did not come from this dashboard.")
    return principal, form


def _not_found(request: Request) -> HTMLResponse:
    return pages.render(
        request, "error.html", {"title": "Not found", "detail": "No such record here."}, 404
    )


# --- signing in and out -------------------------------------------------------------------


async def _sign_in(request: Request, exchange: Callable[[Any], sessions.NewSession]) -> Response:
    """Exchange a credential for a session: the session cookie, and on to the caseload (a
    code leaves the address bar); or the sign-in form again, saying why not."""
    try:
        new = await _db(request).write(exchange)
    except DomainError as exc:
        return pages.render(request, "signin.html", {"title": "Sign in", "error": exc.detail}, 401)
    response = RedirectResponse(pages.url(request, "/"), status_code=303)
    response.set_cookie(
        sessions.COOKIE_NAME,
        new.secret,
        max_age=int(_session_ttl(request).total_seconds()),
        expires=new.expires_at,
        path=pages.cookie_path(request),
        secure=pages.public_origin(settings_of(request)).startswith("https://"),
        httponly=True,
        samesite="strict",
    )
    return response


def _session_ttl(request: Request) -> timedelta:
    return timedelta(minutes=settings_of(request).dashboard_session_minutes)


@router.get("/signin")
async def signin_page(request: Request, code: Annotated[str | None, Query()] = None) -> Response:
    """The sign-in form; with ``?code=`` (a sign-in link), the exchange itself."""
    if code is None:
        return pages.render(request, "signin.html", {"title": "Sign in"})
    ttl = _session_ttl(request)
    return await _sign_in(request, partial(sessions.signin_with_code, code=code, ttl=ttl))


@router.post("/signin")
async def signin_with_token(request: Request) -> Response:
    if not _same_origin(request):
        return _refused(request, "This form was sent from another site.")
    token = (await _form(request)).get("token", "")
    ttl = _session_ttl(request)
    return await _sign_in(request, partial(sessions.signin_with_token, token=token, ttl=ttl))


@router.post("/signout")
async def signout(request: Request) -> Response:
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    secret = request.cookies.get(sessions.COOKIE_NAME, "")
    await _db(request).write(partial(sessions.signout, secret=secret))
    response = _to_signin(request)
    return response


# --- pages ----------------------------------------------------------------------------------


@router.get("/")
async def caseload_page(
    request: Request,
    booster_status: Annotated[str | None, Query(max_length=32)] = None,
    alert: Annotated[str | None, Query(max_length=8)] = None,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = PAGE_SIZE,
) -> Response:
    principal = await _principal(request)
    if principal is None:
        return _to_signin(request)
    status = booster_status if booster_status in BOOSTER_FILTERS else None
    open_only = alert == "open"
    try:
        query = caseload_service.CaseloadQuery(
            booster_status=status,  # type: ignore[arg-type]
            open_alerts_only=open_only,
            cursor=cursor or None,
            limit=limit,
        )
        page = await caseload_service.caseload(_db(request), principal=principal, query=query)
    except DomainError:
        return pages.render(
            request,
            "error.html",
            {"title": "Caseload", "detail": "That page link is not valid."},
            400,
        )
    zone = await _db(request).read_small(partial(views.clinic_zone, principal=principal))
    filters = {
        k: v
        for k, v in {"booster_status": status, "alert": alert if open_only else None}.items()
        if v
    }
    next_url = (
        pages.url(request, "/")
        + "?"
        + urlencode({**filters, "cursor": page.next_cursor, "limit": limit})
        if page.next_cursor
        else None
    )
    return pages.render(
        request,
        "caseload.html",
        {
            "title": "Caseload",
            "rows": page.data,
            "zone": zone,
            "status": status,
            "open_only": open_only,
            "filters": BOOSTER_FILTERS,
            "next_url": next_url,
            "first_url": (pages.url(request, "/") + "?" + urlencode(filters)) if cursor else None,
            "live_after": await _live_cursor(request, principal),
        },
    )


@router.get("/patients/{patient_id}")
async def patient_page(request: Request, patient_id: ResourceId) -> Response:
    principal = await _principal(request)
    if principal is None:
        return _to_signin(request)
    try:
        view = await _db(request).read(
            partial(views.patient_page, principal=principal, patient_id=patient_id)
        )
    except DomainError as exc:
        if exc.status == 404:
            return _not_found(request)
        raise
    return pages.render(
        request,
        "patient.html",
        {
            "title": f"Patient {view.patient.external_id}",
            "view": view,
            "zone": view.zone,
            "live_after": await _live_cursor(request, principal),
            "live_patient": patient_id,
        },
    )


@router.get("/alerts")
async def alerts_page(request: Request) -> Response:
    principal = await _principal(request)
    if principal is None:
        return _to_signin(request)
    view = await _db(request).read(partial(views.inbox, principal=principal))
    return pages.render(
        request,
        "alerts.html",
        {
            "title": "Alerts",
            "view": view,
            "zone": view.zone,
            "live_after": await _live_cursor(request, principal),
        },
    )


async def _alert_action(request: Request, alert_id: str, action: str) -> Response:
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    principal, form = checked
    note = form.get("note", "").strip() or None
    try:
        data = AlertAction(note=note)
    except ValueError:
        return _refused(request, "The note holds characters that cannot be stored.", 422)
    use_case = alerts_service.acknowledge if action == "acknowledge" else alerts_service.resolve
    try:
        await _db(request).write(
            partial(use_case, principal=principal, alert_id=alert_id, data=data)
        )
    except DomainError as exc:
        if exc.status == 404:
            return _not_found(request)
        if exc.status != 409:
            raise
        # someone else moved it first: show the list as it now stands
    return RedirectResponse(pages.local_path(request, form.get("next")), status_code=303)


@router.post("/alerts/{alert_id}/acknowledge")
async def acknowledge_alert(request: Request, alert_id: ResourceId) -> Response:
    return await _alert_action(request, alert_id, "acknowledge")


@router.post("/alerts/{alert_id}/resolve")
async def resolve_alert(request: Request, alert_id: ResourceId) -> Response:
    return await _alert_action(request, alert_id, "resolve")


# --- live updates -------------------------------------------------------------------------


async def _live_cursor(request: Request, principal: Principal) -> str:
    return await _db(request).read_small(partial(events_service.head_cursor, principal=principal))


@router.get("/live")
async def live(
    request: Request,
    after: Annotated[str | None, Query(max_length=256)] = None,
    patient_id: Annotated[str | None, Query(max_length=36, pattern=r"^[A-Za-z0-9\-]+$")] = None,
) -> Response:
    """The event feed as Server-Sent Events, for the open page (the session's organisation,
    the alert and signal events only); the browser resumes with ``Last-Event-ID``."""
    principal = await _principal(request)
    if principal is None:
        return Response(status_code=401)
    resume = request.headers.get("last-event-id") or after
    try:
        position = events_service.decode_cursor(resume) if resume else None
    except DomainError:
        return Response(status_code=400)
    if position is None:
        return Response(status_code=400)
    query = events_service.FeedQuery(
        position, events_service.parse_types(LIVE_TYPES), patient_id, 100
    )
    stream: Any = events_service.stream(
        _db(request),
        principal=principal,
        query=query,
        max_s=settings_of(request).events_stream_max_s,
    )
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
