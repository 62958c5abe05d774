"""Conditional create cannot probe (issue #9, rule 7).

``If-None-Exist`` matches only what the caller may read. A patient token that names the
identifier of another patient's form gets exactly the answer it gets for an identifier that
exists nowhere: same status, same headers (but for the new id), same body (but for the new id).
Another organisation's forms never match a staff token's condition.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from kap_outcomes.auth.models import Role

from .conformance import check
from .forms import us_core_phq9

FHIR = "application/fhir+json"
QR = "/fhir/R4/QuestionnaireResponse"
SYSTEM = "urn:ehr:forms"


def post(tenant: Any, form: Any, headers: dict[str, str], condition: str | None) -> Any:
    extra = {"If-None-Exist": condition} if condition is not None else {}
    return tenant.client.post(QR, json=form, headers={**headers, "Content-Type": FHIR, **extra})


def answer(resp: Any, value: str) -> tuple[int, dict[str, str], str]:
    """What a client can observe, with the server-made id, the probed value and the clock
    blanked out."""
    new_id = resp.json().get("id") if resp.status_code in (200, 201) else None

    def blank(text: str) -> str:
        text = text.replace(value, "<value>")
        return text.replace(new_id, "<id>") if new_id else text

    headers = {
        name: blank(v)
        for name, v in resp.headers.items()
        if name not in {"x-request-id", "date", "content-length"}
    }
    return resp.status_code, headers, re.sub(r'"lastUpdated":"[^"]+"', "", blank(resp.text))


def stored_for_other(tenant: Any, other: str, value: str) -> str:
    form = us_core_phq9(other, [1] * 9)
    form["identifier"] = {"system": SYSTEM, "value": value}
    resp = post(tenant, form, tenant.headers(Role.integration), None)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def test_a_patient_token_learns_nothing_about_another_patients_forms(
    tenant: Any, count_rows: Any
) -> None:
    own, other = tenant.patient(), tenant.patient()
    patient = tenant.patient_token(own)
    # The probe names the other patient's identifier, in each form the condition may take;
    # its twin names one that exists nowhere. The requests are the same but for that value.
    for condition in (f"identifier={SYSTEM}|{{}}", "identifier={}", "identifier=|{}"):
        for subject in (own, other):
            taken, free = f"form-{uuid.uuid4()}", f"form-{uuid.uuid4()}"
            stored_for_other(tenant, other, taken)
            answers = []
            for value in (taken, free):
                form = us_core_phq9(subject, [0] * 9)
                resp = post(tenant, form, patient, condition.format(value))
                assert resp.status_code in (201, 422), resp.text
                answers.append(answer(resp, value))
            assert answers[0] == answers[1], (condition, subject == own)
    # Its own patient's forms were stored (2 per condition), beside the other patient's 6.
    assert count_rows("assessments", tenant.org_id) == 6 + 6


def test_a_patient_tokens_own_form_still_matches(tenant: Any, count_rows: Any) -> None:
    own = tenant.patient()
    patient = tenant.patient_token(own)
    condition = f"identifier={SYSTEM}|{uuid.uuid4()}"
    first = post(tenant, us_core_phq9(own, [0] * 9), patient, condition)
    assert first.status_code == 201, first.text
    again = post(tenant, us_core_phq9(own, [0] * 9), patient, condition)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert count_rows("assessments", tenant.org_id) == 1


def test_staff_conditions_never_match_another_organisations_forms(
    tenant: Any, make_tenant: Any, count_rows: Any
) -> None:
    value = f"form-{uuid.uuid4()}"
    stored_for_other(tenant, tenant.patient(), value)
    other = make_tenant()
    own = other.patient()
    condition = f"identifier={SYSTEM}|{value}"
    resp = post(other, us_core_phq9(own, [0] * 9), other.headers(Role.integration), condition)
    assert resp.status_code == 201, resp.text
    assert check(resp.json())["subject"] == {"reference": f"Patient/{own}"}
    assert count_rows("assessments", other.org_id) == 1
    # Within one organisation a staff token matches any patient's form (it may read them all).
    again = post(tenant, us_core_phq9(tenant.patient(), [0] * 9), tenant.headers(), condition)
    assert again.status_code == 200
