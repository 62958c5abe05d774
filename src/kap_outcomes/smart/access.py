"""What a SMART access token needs on each route: the scopes, per resource type and
interaction, that must all be granted for the request to go ahead.

One table (:data:`ROUTE_SCOPES`), keyed by method and path template, decides for every
route that takes a bearer token. A route missing from it, or mapped to ``None``, refuses
every SMART access token (deny by default): administration (tokens, clients, webhooks,
policy, the organisation, the audit log) and patient-app enrolment never take one. Staff API
tokens are not affected: their role rules stay as they are.

The FHIR routes map as SMART App Launch 2.0 says: read ``r``, search ``s``, create ``c``,
update ``u``, delete ``d`` of the resource type. The ``/v1`` routes map onto the FHIR types
they serve the same data as: patients → ``Patient``, assessments (the completed forms) →
``QuestionnaireResponse``, trends (scores over time) → ``Observation``. Data with no FHIR
resource type here (courses, dosing sessions, safety alerts, the booster signal that is
computed from doses, the event log) needs a ``system/*`` scope; the caseload and the
reports, which show every patient with their scores, need both ``Patient`` and
``Observation``. docs/fhir-smart.md has the same table in prose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kap_outcomes.bulk.service import EXPORT_TYPES
from kap_outcomes.errors import DomainError
from kap_outcomes.smart.scopes import Scope, missing, parse_scope, parse_scopes

REFUSED = None
"""SMART access tokens may not use the route at all."""

_NEEDS: dict[tuple[str, str], tuple[str, ...] | None] = {
    # --- FHIR R4 -------------------------------------------------------------------------
    ("GET", "/fhir/R4/Questionnaire"): ("Questionnaire.s",),
    ("GET", "/fhir/R4/Questionnaire/{questionnaire_id}"): ("Questionnaire.r",),
    ("POST", "/fhir/R4/QuestionnaireResponse"): ("QuestionnaireResponse.c",),
    ("GET", "/fhir/R4/QuestionnaireResponse"): ("QuestionnaireResponse.s",),
    ("GET", "/fhir/R4/QuestionnaireResponse/{response_id}"): ("QuestionnaireResponse.r",),
    ("POST", "/fhir/R4/Observation"): ("Observation.c",),
    ("POST", "/fhir/R4"): ("Observation.c",),  # a transaction Bundle of score Observations
    ("GET", "/fhir/R4/Observation"): ("Observation.s",),
    ("GET", "/fhir/R4/Observation/{observation_id}"): ("Observation.r",),
    ("GET", "/fhir/R4/Patient"): ("Patient.s",),
    ("GET", "/fhir/R4/Patient/{patient_id}"): ("Patient.r",),
    ("GET", "/fhir/R4/Condition"): ("Condition.s",),
    ("GET", "/fhir/R4/Condition/{condition_id}"): ("Condition.r",),
    ("POST", "/fhir/R4/Group"): ("Group.c",),
    ("GET", "/fhir/R4/Group"): ("Group.s",),
    ("GET", "/fhir/R4/Group/{group_id}"): ("Group.r",),
    # Bulk Data export: the kick-off also needs the read scopes of the types it exports (the
    # _type list, or every exported type; see query_needs); the status, cancel and files of an
    # export need nothing more, a file the read scope of its type
    ("GET", "/fhir/R4/$export"): (),
    ("GET", "/fhir/R4/Patient/$export"): (),
    ("GET", "/fhir/R4/Group/{group_id}/$export"): ("Group.r",),
    ("GET", "/fhir/R4/bulk/{export_id}"): (),
    ("DELETE", "/fhir/R4/bulk/{export_id}"): (),
    ("GET", "/fhir/R4/bulk/{export_id}/{file_name}"): (),
    # --- /v1: patients and their forms ---------------------------------------------------
    ("POST", "/v1/patients"): ("Patient.c",),
    ("GET", "/v1/patients"): ("Patient.s",),
    ("GET", "/v1/patients/{patient_id}"): ("Patient.r",),
    ("PATCH", "/v1/patients/{patient_id}"): ("Patient.u",),
    ("POST", "/v1/patients/{patient_id}/assessments"): ("QuestionnaireResponse.c",),
    ("GET", "/v1/patients/{patient_id}/assessments"): ("QuestionnaireResponse.s",),
    ("GET", "/v1/assessments/{assessment_id}"): ("QuestionnaireResponse.r",),
    ("GET", "/v1/assessments/{assessment_id}/history"): ("QuestionnaireResponse.r",),
    ("POST", "/v1/assessments/{assessment_id}/amend"): ("QuestionnaireResponse.u",),
    ("POST", "/v1/assessments/{assessment_id}/retract"): ("QuestionnaireResponse.u",),
    ("GET", "/v1/patients/{patient_id}/trends"): ("Observation.s",),
    ("GET", "/v1/patients/{patient_id}/charts/{instrument}.svg"): ("Observation.s",),
    # --- /v1: data with no FHIR resource type here: system/* only ------------------------
    ("POST", "/v1/patients/{patient_id}/courses"): ("*.c",),
    ("GET", "/v1/patients/{patient_id}/courses"): ("*.s",),
    ("GET", "/v1/patients/{patient_id}/courses/{course_id}"): ("*.r",),
    ("POST", "/v1/patients/{patient_id}/sessions"): ("*.c",),
    ("GET", "/v1/patients/{patient_id}/sessions"): ("*.s",),
    ("GET", "/v1/patients/{patient_id}/sessions/{session_id}"): ("*.r",),
    ("GET", "/v1/sessions/{session_id}"): ("*.r",),
    ("GET", "/v1/sessions/{session_id}/history"): ("*.r",),
    ("POST", "/v1/sessions/{session_id}/amend"): ("*.u",),
    ("POST", "/v1/sessions/{session_id}/retract"): ("*.u",),
    ("GET", "/v1/patients/{patient_id}/signals"): ("*.rs",),
    ("GET", "/v1/alerts"): ("*.s",),
    ("POST", "/v1/alerts/{alert_id}/acknowledge"): ("*.u",),
    ("POST", "/v1/alerts/{alert_id}/resolve"): ("*.u",),
    ("GET", "/v1/events"): ("*.rs",),
    # --- /v1: every patient with their scores ---------------------------------------------
    ("GET", "/v1/caseload"): ("Patient.rs", "Observation.rs"),
    ("GET", "/v1/reports/outcomes"): ("Patient.rs", "Observation.rs"),
    ("GET", "/v1/reports/cms159"): ("Patient.rs", "Observation.rs"),
    # --- never with a SMART token ---------------------------------------------------------
    ("POST", "/v1/patients/{patient_id}/enrollments"): REFUSED,
    ("GET", "/v1/patients/{patient_id}/enrollments/{enrollment_id}"): REFUSED,
}
"""Needed scopes as ``Resource.permissions`` (every permission listed is needed)."""


def _scope(need: str) -> Scope:
    parsed = parse_scope(f"system/{need}")
    if parsed is None:  # pragma: no cover - the table above is static
        raise ValueError(need)
    return parsed


ROUTE_SCOPES: dict[tuple[str, str], tuple[Scope, ...] | None] = {
    route: None if needs is None else tuple(_scope(n) for n in needs)
    for route, needs in _NEEDS.items()
}


def needed(method: str, path: str | None) -> tuple[Scope, ...] | None:
    """The scopes a route needs, or None when SMART access tokens may not use it."""
    if path is None:
        return None
    return ROUTE_SCOPES.get((method.upper(), path))


def insufficient_scope(needs: tuple[Scope, ...] | None) -> DomainError:
    """403 (RFC 6750 §3.1 ``insufficient_scope``), naming the scopes that would do."""
    if needs is None:
        detail = "insufficient_scope: SMART access tokens may not use this route."
        header = 'Bearer realm="kap-outcomes", error="insufficient_scope"'
    else:
        wanted = " ".join(s.text for s in needs)
        detail = f"insufficient_scope: this request needs {wanted}."
        header = f'Bearer realm="kap-outcomes", error="insufficient_scope", scope="{wanted}"'
    return DomainError(
        detail=detail,
        status=403,
        slug="insufficient-scope",
        headers={"WWW-Authenticate": header},
    )


INCLUDE_SCOPES: dict[str, str] = {
    "QuestionnaireResponse:subject": "Patient.r",
    "QuestionnaireResponse:patient": "Patient.r",
    "Observation:subject": "Patient.r",
    "Observation:patient": "Patient.r",
    "Observation:derived-from": "QuestionnaireResponse.r",
}
"""What an ``_include`` adds to a search's needs: the included resources are read too, so a
token that may search forms but not read patients cannot have them served by an include."""

_KICK_OFFS = frozenset(
    {"/fhir/R4/$export", "/fhir/R4/Patient/$export", "/fhir/R4/Group/{group_id}/$export"}
)
_EXPORT_FILE = "/fhir/R4/bulk/{export_id}/{file_name}"


def query_needs(
    path: str | None, query: Mapping[str, Sequence[str]], path_params: Mapping[str, str]
) -> set[str]:
    """Needs that depend on the request, not only its route: what an ``_include`` serves,
    the types an export writes (``_type``, else every exported type: SMART Bulk Data reads
    them all), the type of an export file."""
    needs = {INCLUDE_SCOPES[i] for i in query.get("_include", ()) if i in INCLUDE_SCOPES}
    if path in _KICK_OFFS:
        asked = [t.strip() for v in query.get("_type", ()) for t in v.split(",") if t.strip()]
        needs |= {f"{t}.rs" for t in asked if t in EXPORT_TYPES} or {
            f"{t}.rs" for t in EXPORT_TYPES
        }
    elif path == _EXPORT_FILE:
        kind = path_params.get("file_name", "").removesuffix(".ndjson")
        if kind in EXPORT_TYPES:
            needs.add(f"{kind}.r")
    return needs


def check(
    method: str,
    path: str | None,
    granted_scope: str,
    query: Mapping[str, Sequence[str]] | None = None,
    path_params: Mapping[str, str] | None = None,
) -> None:
    """Raise the 403 unless the granted scopes cover everything the route needs, including
    what depends on the request itself (:func:`query_needs`)."""
    needs = needed(method, path)
    if needs is None:
        raise insufficient_scope(None)
    extra = query_needs(path, query or {}, path_params or {})
    if extra:
        needs = needs + tuple(_scope(n) for n in sorted(extra))
    granted, _ = parse_scopes(granted_scope)
    if missing(needs, granted):
        raise insufficient_scope(needs)
