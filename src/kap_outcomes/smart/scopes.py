"""SMART ``system/`` scopes: parsing, and whether a request stays within a registration.

A scope is ``system/<resource type or *>.<permissions>``. The permissions are SMART v2's, a
non-empty subset of ``cruds`` written in that order (SMART App Launch 2.0, §Scopes), or one of
the SMART v1 forms, read as v2 says: ``read`` = ``rs``, ``write`` = ``cud``, ``*`` = ``cruds``.
The resource type is one this service serves (:data:`RESOURCE_TYPES`, those of its
CapabilityStatement) or ``*``. Only ``system/`` scopes belong to a backend service;
``patient/`` and ``user/`` scopes, query-restricted scopes (``?category=…``) and other
resource types are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RESOURCE_TYPES = (
    "Patient",
    "Observation",
    "Questionnaire",
    "QuestionnaireResponse",
    "Condition",
    "Group",
)
_SCOPE = re.compile(rf"system/(\*|{'|'.join(RESOURCE_TYPES)})\.(?:(c?r?u?d?s?)|(read|write|\*))")
V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
"""SMART v1 permissions as v2 permissions (SMART App Launch 2.0, scopes for requesting
clinical data: ``.read`` is ``.rs``, ``.write`` is ``.cud``)."""
PERMISSION_ORDER = "cruds"


@dataclass(frozen=True, slots=True)
class Scope:
    resource: str
    permissions: frozenset[str]
    text: str

    def covers(self, other: Scope) -> bool:
        return self.resource in ("*", other.resource) and other.permissions <= self.permissions


def parse_scope(text: str) -> Scope | None:
    match = _SCOPE.fullmatch(text)
    if match is None:
        return None
    permissions = match.group(2) or V1_PERMISSIONS.get(match.group(3) or "", "")
    if not permissions:
        return None
    return Scope(resource=match.group(1), permissions=frozenset(permissions), text=text)


def parse_scopes(value: str) -> tuple[list[Scope], list[str]]:
    """The scopes of a space-separated list (each once, in order) and the words refused."""
    scopes: list[Scope] = []
    refused: list[str] = []
    seen: set[str] = set()
    for word in value.split(" "):
        if not word or word in seen:
            continue
        seen.add(word)
        scope = parse_scope(word)
        if scope is None:
            refused.append(word)
        else:
            scopes.append(scope)
    return scopes, refused


def within(requested: list[Scope], registered: list[Scope]) -> bool:
    return all(any(r.covers(want) for r in registered) for want in requested)


def missing(needed: tuple[Scope, ...], granted: list[Scope]) -> list[Scope]:
    """The needed scopes that no granted scope covers (empty: the request is allowed).

    A needed scope of resource ``*`` (data with no FHIR resource type here, such as dosing
    sessions) is covered only by a granted ``system/*`` scope.
    """
    return [need for need in needed if not any(g.covers(need) for g in granted)]


def join(scopes: list[Scope]) -> str:
    return " ".join(s.text for s in scopes)


def v2_text(resource: str, permissions: str) -> str:
    ordered = "".join(p for p in PERMISSION_ORDER if p in permissions)
    return f"system/{resource}.{ordered}"
