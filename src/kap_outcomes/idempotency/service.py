"""Idempotent creates (IETF draft "The Idempotency-Key HTTP Header Field").

Under a key, the first request's response is stored in the same transaction as what it
created. A retry with the same key and the same request gets that response again (same
status, same body, nothing new stored); the same key with a different request is a 422. Keys
belong to the token that sent them and are kept :data:`RETENTION` (at least 24 hours).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from pydantic import BaseModel
from sqlalchemy import Connection

from kap_outcomes.auth.principal import Principal
from kap_outcomes.db import new_id, utcnow
from kap_outcomes.errors import DomainError, conflict
from kap_outcomes.idempotency import repository

RETENTION = timedelta(hours=48)
"""Twice the 24 hours the API contract promises, so a key never lapses at the boundary."""

MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int
    body: str
    replayed: bool


KEY_RULE = "1 to 255 visible ASCII characters (a UUID is a good choice)"
"""What a key must be (no PHI belongs in it: it is not logged); the routes' create helper
(``kap_outcomes.creating``) checks it with the rest of the request."""


def is_valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and all(" " < ch <= "~" for ch in key)


def fingerprint(method: str, path: str, body: BaseModel, condition: str = "") -> str:
    """What makes two requests "the same": method, path, the validated body, and the
    condition of a conditional create (FHIR's ``If-None-Exist``) when there is one."""
    condition = f"{condition}\n" if condition else ""
    canonical = f"{method} {path}\n{condition}{body.model_dump_json()}"
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(found: object, fingerprint_: str) -> Outcome:
    if getattr(found, "fingerprint", None) != fingerprint_:
        raise DomainError(
            detail="This Idempotency-Key was already used with a different request.",
            status=422,
            slug="idempotency-key-reused",
            title="Idempotency-Key reused",
        )
    status_code = getattr(found, "status_code", None)
    body = getattr(found, "response_body", None)
    if status_code is None or body is None:
        raise conflict("A request with this Idempotency-Key is still in progress; retry later.")
    return Outcome(status_code=int(status_code), body=str(body), replayed=True)


Created = BaseModel | Outcome
"""What a unit of work that creates returns: the created resource (answered with the route's
status), or a whole answer (a FHIR conditional create that found its match answers 200)."""


def answer(created: Created, status_code: int) -> Outcome:
    if isinstance(created, Outcome):
        return created
    return Outcome(status_code=status_code, body=created.model_dump_json(), replayed=False)


def run(
    conn: Connection,
    *,
    principal: Principal,
    key: str | None,
    fingerprint: str,
    create: Callable[[Connection], Created],
    status_code: int = 201,
) -> Outcome:
    """Create once per key: claim the key, create, store the response, all in one transaction."""
    if key is None:
        return answer(create(conn), status_code)
    now = utcnow()
    found = repository.find(conn, token_id=principal.token_id, key=key)
    if found is not None and found.created_at < now - RETENTION:
        repository.forget(conn, record_id=found.id)  # lapsed: the key is free again
        found = None
    if found is not None:
        return _replay(found, fingerprint)
    record_id = new_id()
    claimed = repository.claim(
        conn,
        {
            "id": record_id,
            "organisation_id": principal.organisation_id,
            "token_id": principal.token_id,
            "key": key,
            "fingerprint": fingerprint,
            "status_code": None,
            "response_body": None,
            "created_at": now,
        },
    )
    if not claimed:  # a concurrent request with the key committed first (PostgreSQL)
        found = repository.find(conn, token_id=principal.token_id, key=key)
        if found is None:
            raise conflict("A request with this Idempotency-Key is still in progress; retry later.")
        return _replay(found, fingerprint)
    outcome = answer(create(conn), status_code)
    repository.complete(
        conn, record_id=record_id, status_code=outcome.status_code, body=outcome.body
    )
    return outcome


def idempotent(
    create: Callable[[Connection], Created],
    *,
    principal: Principal,
    key: str | None,
    fingerprint: str,
    status_code: int = 201,
) -> Callable[[Connection], Outcome]:
    """The unit of work of an idempotent create, for ``Database.write``."""
    return partial(
        run,
        principal=principal,
        key=key,
        fingerprint=fingerprint,
        create=create,
        status_code=status_code,
    )


def purge(conn: Connection) -> int:
    """Delete lapsed keys (``kap-outcomes db purge-idempotency-keys``)."""
    return repository.purge_before(conn, cutoff=utcnow() - RETENTION)
