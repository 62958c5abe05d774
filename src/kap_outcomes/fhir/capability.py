"""The CapabilityStatement: exactly what this server supports, and nothing more."""

from __future__ import annotations

from typing import Any

from kap_outcomes import __version__
from kap_outcomes.fhir.questionnaires import PUBLISHED_DATE


def _param(name: str, kind: str, doc: str) -> dict[str, str]:
    return {"name": name, "type": kind, "documentation": doc}


_ID = _param("_id", "token", "Logical ids, comma-separated (any of them).")
_SUBJECT = _param(
    "subject", "reference", "Patient/{id}, {id} or subject:Patient={id}; other types match nothing."
)
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
                "narrows: all repetitions must hold.",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/"
                                    "restful-security-service",
                                    "code": "OAuth",
                                }
                            ]
                        }
                    ]
                },
                "resource": [
                    {
                        "type": "Questionnaire",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            _param("url", "uri", "Canonical URL, optionally |version."),
                            _ID,
                        ],
                    },
                    {
                        "type": "QuestionnaireResponse",
                        "interaction": [
                            {"code": "read"},
                            {"code": "search-type"},
                            {"code": "create"},
                        ],
                        "conditionalCreate": True,
                        "searchParam": [
                            _param("patient", "reference", "Patient/{id} or {id}."),
                            _SUBJECT,
                            _ID,
                            _param("authored", "date", "When the form was completed."),
                            _param("questionnaire", "reference", "The Questionnaire canonical."),
                            *_COMMON,
                        ],
                    },
                    {
                        "type": "Observation",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            _param("patient", "reference", "Patient/{id} or {id}."),
                            _SUBJECT,
                            _ID,
                            _param("code", "token", "LOINC code, e.g. http://loinc.org|44261-6."),
                            _param("category", "token", "survey."),
                            _param("date", "date", "effective date (prefixes eq ge gt le lt)."),
                            *_COMMON,
                        ],
                    },
                    {
                        "type": "Patient",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            _param(
                                "identifier",
                                "token",
                                "https://kap-outcomes.dev/fhir/sid/external-id|{external_id}",
                            ),
                            _ID,
                        ],
                        "operation": [
                            _export("patient-export", "All patients and their data (async).")
                        ],
                    },
                    {
                        "type": "Group",
                        "interaction": [
                            {"code": "read"},
                            {"code": "search-type"},
                            {"code": "create"},
                        ],
                        "searchParam": [_ID, _param("name", "string", "The exact name.")],
                        "operation": [
                            _export("group-export", "A group's members and their data (async).")
                        ],
                    },
                    {
                        "type": "Condition",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            _param("patient", "reference", "Patient/{id} or {id}."),
                            _SUBJECT,
                            _ID,
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
