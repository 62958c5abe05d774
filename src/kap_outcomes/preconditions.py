"""Optimistic concurrency for corrections: ``ETag`` out, ``If-Match`` in (RFC 9110 13.1.1).

A correction names the version it corrects; without ``If-Match`` the request is a 428,
against a newer version a 412. Shared by every resource that is corrected by versions
(assessments, sessions, the organisation's settings).
"""

from __future__ import annotations

from kap_outcomes.errors import DomainError


def etag(version: int) -> str:
    return f'"{version}"'


def precondition_required(noun: str = "assessment", detail: str | None = None) -> DomainError:
    return DomainError(
        detail=detail or f"Send If-Match with the {noun}'s ETag (read it with GET first).",
        status=428,
        slug="precondition-required",
    )


def precondition_failed(noun: str = "assessment", detail: str | None = None) -> DomainError:
    return DomainError(
        detail=detail or f"The {noun} changed since that ETag; read it again, then correct it.",
        status=412,
        slug="precondition-failed",
    )


def check_if_match(if_match: str | None, version: int, noun: str = "assessment") -> None:
    check_if_match_tag(if_match, etag(version), noun)


def check_if_match_tag(if_match: str | None, current: str, noun: str) -> None:
    """``If-Match`` must name ``current`` (an ETag, quotes included); ``*`` names no version."""
    if if_match is None or not if_match.strip():
        raise precondition_required(noun)
    tags = [tag.strip() for tag in if_match.split(",")]
    if "*" in tags:  # names no version: a correction must say which one it corrects
        raise precondition_required(
            noun, f"If-Match: * names no version; send the ETag of the {noun} you read."
        )
    if current not in (tag.removeprefix("W/") for tag in tags):
        raise precondition_failed(noun)
