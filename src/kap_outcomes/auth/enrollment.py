"""Patient app enrollment: a clinician hands the patient a single-use, short-lived code; the
app exchanges it for a patient token of its own.

Codes carry 80 random bits, written as 16 Crockford base32 characters (``7Q2M-…``) so that
they can be typed; only their SHA-256 is stored. Every failure (unknown, used, expired) is the
same answer, so the endpoint tells a guesser nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import Connection

from kap_outcomes.audit import service as audit
from kap_outcomes.auth import repository
from kap_outcomes.auth.models import Enrolled, EnrollmentIssued, EnrollmentPublic, Role
from kap_outcomes.auth.service import Principal, issue_token
from kap_outcomes.db import new_id, utcnow
from kap_outcomes.errors import DomainError, not_found
from kap_outcomes.patients.service import require_patient

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1"})


def _new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def normalise(code: str) -> str:
    """What the patient typed, as it was issued: case, hyphens, spaces and O/I/L forgiven."""
    return "".join(code.split()).replace("-", "").upper().translate(_CONFUSABLE)


def code_hash(code: str) -> str:
    return hashlib.sha256(normalise(code).encode()).hexdigest()


def invalid_code() -> DomainError:
    return DomainError(
        detail="This enrollment code is not valid (unknown, already used or expired).",
        status=400,
        slug="invalid-enrollment-code",
    )


def create_enrollment(
    conn: Connection, *, principal: Principal, patient_id: str, ttl: timedelta
) -> EnrollmentIssued:
    require_patient(conn, principal=principal, patient_id=patient_id)
    code = _new_code()
    now = utcnow()
    enrollment_id = new_id()
    repository.insert_code(
        conn,
        {
            "id": enrollment_id,
            "organisation_id": principal.organisation_id,
            "patient_id": patient_id,
            "code_hash": code_hash(code),
            "created_by": principal.token_id,
            "created_at": now,
            "expires_at": now + ttl,
            "used_at": None,
            "token_id": None,
        },
    )
    return EnrollmentIssued(id=enrollment_id, code=code, expires_at=now + ttl)


def get_enrollment(
    conn: Connection, *, principal: Principal, patient_id: str, enrollment_id: str
) -> EnrollmentPublic:
    require_patient(conn, principal=principal, patient_id=patient_id)
    row = repository.get_code(conn, patient_id=patient_id, enrollment_id=enrollment_id)
    if row is None:
        raise not_found("Enrollment")
    return EnrollmentPublic.model_validate(row, from_attributes=True)


def enroll(conn: Connection, *, code: str) -> Enrolled:
    normalised = normalise(code)
    if len(normalised) != 16 or any(ch not in ALPHABET for ch in normalised):
        raise invalid_code()
    row = repository.redeem_code(conn, code_hash=code_hash(code), at=utcnow())
    if row is None:
        raise invalid_code()
    token_id, secret = issue_token(
        conn,
        organisation_id=row.organisation_id,
        role=Role.patient,
        label="patient app (enrolled)",
        patient_id=row.patient_id,
    )
    repository.link_code_to_token(conn, code_id=row.id, token_id=token_id)
    audit.acting_as(
        Principal(
            token_id=token_id,
            organisation_id=row.organisation_id,
            role=Role.patient,
            patient_id=row.patient_id,
        )
    )
    return Enrolled(token=secret, token_id=token_id, patient_id=row.patient_id)
