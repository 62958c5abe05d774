"""SMART v2 ``system/`` scopes: parsing, and whether a request stays within a registration.

A scope is ``system/<resource type or *>.<permissions>``, the permissions a non-empty subset
of ``cruds`` written in that order (SMART App Launch 2.0, §Scopes), the resource type one
that this service serves (:data:`RESOURCE_TYPES`, those of its CapabilityStatement). Only
``system/`` scopes belong to a backend service; ``patient/`` and ``user/`` scopes, v1
suffixes (``.read``), query-restricted scopes (``?category=…``) and other resource types are
refused.
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
_SCOPE = re.compile(rf"system/(\*|{'|'.join(RESOURCE_TYPES)})\.(c?r?u?d?s?)")
WRITE_PERMISSIONS = frozenset("cud")


@dataclass(frozen=True, slots=True)
class Scope:
    resource: str
    permissions: frozenset[str]
    text: str

    def covers(self, other: Scope) -> bool:
        return self.resource in ("*", other.resource) and other.permissions <= self.permissions


def parse_scope(text: str) -> Scope | None:
    match = _SCOPE.fullmatch(text)
    if match is None or not match.group(2):
        return None
    return Scope(resource=match.group(1), permissions=frozenset(match.group(2)), text=text)


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


def allows_writes(scope_value: str) -> bool:
    """Does any scope of a granted list permit create, update or delete?"""
    scopes, _ = parse_scopes(scope_value)
    return any(s.permissions & WRITE_PERMISSIONS for s in scopes)


def join(scopes: list[Scope]) -> str:
    return " ".join(s.text for s in scopes)
