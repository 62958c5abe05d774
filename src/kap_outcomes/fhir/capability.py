"""The CapabilityStatement: exactly what this server supports, and nothing more."""

from __future__ import annotations

from typing import Any

from kap_outcomes import __version__
from kap_outcomes.fhir.questionnaires import PUBLISHED_DATE
from kap_outcomes.links import FHIR_PATH
from kap_outcomes.smart.tokens import TOKEN_PATH


def _param(name: str, kind: str, doc: str) -> dict[str, str]:
    return {"name": name, "type": kind, "documentation": doc}


_ID = _param("_id", "token", "Logical ids, comma-separated (any of them).")
_SUBJECT = _param(
    "subject", "reference", "Patient/{id}, {id} or subject:Patient={id}; other types match nothing."
)
_BY_PATIENT = [_param("patient", "reference", "Patient/{id} or {id}."), _SUBJECT, _ID]
"""How a resource of a patient is found: by its patient (either name) or its own id."""


def _interactions(*more: str) -> list[dict[str, str]]:
    """Read and search, and ``more``."""
    return [{"code": code} for code in ("read", "search-type", *more)]


def _includes(resource_type: str) -> list[str]:
    """A resource of a patient includes its patient (either name)."""
    return [f"{resource_type}:subject", f"{resource_type}:patient"]


BULK_DATA = "http://hl7.org/fhir/uv/bulkdata"
"""Bulk Data Access IG: ``$export`` at system, Patient and Group level (kap_outcomes.bulk)."""


def _export(level: str, doc: str) -> dict[str, str]:
    return {
        "name": "export",
        "definition": f"{BULK_DATA}/OperationDefinition/{level}",
        "documentation": doc,
    }


_COMMON = [
    _param("_lastUpdated", "date", "When the resource was last changed (prefixes eq ge gt le lt)."),
    _param("_count", "number", "Page size, 1-500 (default 50); follow link[next]."),
]


OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
"""SMART's extension naming the OAuth endpoints on ``rest.security`` (SMART App Launch:
conformance); clients such as fhirclient read it from the CapabilityStatement."""
_SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def security(base: str) -> dict[str, Any]:
    """``rest.security``: SMART-on-FHIR (Backend Services) with its OAuth endpoints.

    ``base`` is the FHIR base (``<KAP_PUBLIC_BASE_URL>/fhir/R4``); the endpoints hang off the
    public base URL itself. ``register`` is where an admin registers a backend client
    (``POST /v1/clients``, with an admin's token: there is no open dynamic registration) and
    ``manage`` where the registrations are listed.
    """
    root = base.removesuffix(FHIR_PATH)
    return {
        "extension": [
            {
                "url": OAUTH_URIS,
                "extension": [
                    {"url": "token", "valueUri": root + TOKEN_PATH},
                    {"url": "register", "valueUri": root + "/v1/clients"},
                    {"url": "manage", "valueUri": root + "/v1/clients"},
                ],
            }
        ],
        "service": [
            {
                "coding": [{"system": _SECURITY_SERVICE, "code": "SMART-on-FHIR"}],
                "text": "OAuth2 using SMART-on-FHIR profile (SMART Backend Services: "
                "client_credentials with a private_key_jwt assertion); discovery at "
                ".well-known/smart-configuration",
            },
            {"coding": [{"system": _SECURITY_SERVICE, "code": "OAuth"}]},
        ],
        "description": "Send Authorization: Bearer with an API token or a SMART access token "
        "(SMART v2 system/ scopes, checked per resource type and interaction).",
    }


def capability_statement(base: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": PUBLISHED_DATE,
        "publisher": "kap-outcomes",
        "kind": "instance",
        "software": {"name": "kap-outcomes", "version": __version__},
        "implementation": {"description": "kap-outcomes FHIR R4 interface", "url": base},
        "instantiates": [f"{BULK_DATA}/CapabilityStatement/bulk-data"],
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Bearer tokens as on /v1 (staff roles; a patient token reaches "
                "only its own patient). Another organisation's resource is a 404. Searches are "
                "lenient by default (a parameter not listed here is ignored and left out of the "
                "self link); Prefer: handling=strict makes it a 400. A repeated parameter "
                "narrows: all repetitions must hold. Every searchset carries total; "
                "_summary=count answers with the total alone; _sort=-date (Observation) and "
                "_sort=-authored (QuestionnaireResponse) are the order anyway. A transaction "
                "Bundle of Observations (scores) is accepted at the base.",
                "security": security(base),
                "interaction": [{"code": "transaction"}],
                "resource": [
                    {
                        "type": "Questionnaire",
                        "interaction": _interactions(),
                        "searchParam": [
                            _param("url", "uri", "Canonical URL, optionally |version."),
                            _ID,
                        ],
                    },
                    {
                        "type": "QuestionnaireResponse",
                        "interaction": _interactions("create"),
                        "conditionalCreate": True,
                        "searchInclude": _includes("QuestionnaireResponse"),
                        "searchParam": [
                            *_BY_PATIENT,
                            _param("authored", "date", "When the form was completed."),
                            _param("questionnaire", "reference", "The Questionnaire canonical."),
                            *_COMMON,
                        ],
                    },
                    {
                        "type": "Observation",
                        "interaction": _interactions("create"),
                        "conditionalCreate": True,
                        "searchInclude": [
                            "Observation:derived-from",
                            *_includes("Observation"),
                        ],
                        "searchParam": [
                            *_BY_PATIENT,
                            _param("code", "token", "LOINC code, e.g. http://loinc.org|44261-6."),
                            _param("category", "token", "survey."),
                            _param("date", "date", "effective date (prefixes eq ge gt le lt)."),
                            *_COMMON,
                        ],
                    },
                    {
                        "type": "Patient",
                        "interaction": _interactions(),
                        "searchParam": [
                            _param(
                                "identifier",
                                "token",
                                "https://kap-outcomes.dev/fhir/sid/external-id|{external_id}, "
                                "{system}|{value} of any stored identifier, or {value}.",
                            ),
                            _ID,
                        ],
                        "operation": [
                            _export("patient-export", "All patients and their data (async).")
                        ],
                    },
                    {
                        "type": "Group",
                        "interaction": _interactions("create"),
                        "searchParam": [_ID, _param("name", "string", "The exact name.")],
                        "operation": [
                            _export("group-export", "A group's members and their data (async).")
                        ],
                    },
                    {
                        "type": "Condition",
                        "interaction": _interactions(),
                        "searchParam": [
                            *_BY_PATIENT,
                            _param(
                                "code",
                                "token",
                                "SNOMED CT code, e.g. http://snomed.info/sct|35489007.",
                            ),
                            _COMMON[1],
                        ],
                    },
                ],
                "operation": [
                    _export("export", "Everything of the organisation's patients (async).")
                ],
            }
        ],
    }
