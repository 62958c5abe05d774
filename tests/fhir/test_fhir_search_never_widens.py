"""FHIR searches never widen (issue #9, rule 6).

A parameter the server does not apply must never silently make the answer larger than what the
client asked for: ``subject`` and ``_id`` work where FHIR R4 defines them, a repeated parameter
narrows (AND), an empty value is refused, ``Prefer: handling=strict`` turns an unknown or
unsupported parameter into a 400, and in the default lenient mode the ``self`` link lists only
the parameters that were applied (FHIR R4 search, "Handling Errors").
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from .conformance import check
from .test_fhir_read import EXT, FHIR, submit

STRICT = {"Prefer": "handling=strict"}


def search(tenant: Any, path: str, params: Any, headers: dict[str, str] | None = None) -> Any:
    return tenant.client.get(
        f"/fhir/R4/{path}", params=params, headers={**tenant.headers(), **(headers or {})}
    )


def bundle_of(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith(FHIR)
    return check(resp.json())


def ids(resp: Any) -> list[str]:
    return [e["resource"]["id"] for e in bundle_of(resp)["entry"]]


def subjects(resp: Any) -> set[str]:
    return {e["resource"]["subject"]["reference"] for e in bundle_of(resp)["entry"]}


def self_params(resp: Any) -> list[tuple[str, str]]:
    [url] = [link["url"] for link in bundle_of(resp)["link"] if link["relation"] == "self"]
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


@pytest.fixture
def two_patients(tenant: Any) -> tuple[str, str, str, str]:
    """Two patients of one organisation with one GAD-7 each: (a, b, form of a, form of b)."""
    a, b = tenant.patient(), tenant.patient()
    form_a = submit(tenant, a, "gad7", [1] * 7, "2026-04-01T10:00:00Z")
    form_b = submit(tenant, b, "gad7", [2] * 7, "2026-04-02T10:00:00Z")
    return a, b, form_a, form_b


@pytest.mark.parametrize("path", ["QuestionnaireResponse", "Observation"])
def test_subject_narrows_like_patient(tenant: Any, two_patients: Any, path: str) -> None:
    a, b, _, _ = two_patients
    assert subjects(search(tenant, path, {})) == {f"Patient/{a}", f"Patient/{b}"}
    for value in (f"Patient/{a}", a):
        assert subjects(search(tenant, path, {"subject": value})) == {f"Patient/{a}"}
    assert subjects(search(tenant, path, {"subject:Patient": a})) == {f"Patient/{a}"}
    # A subject of another type (FHIR R4 reference search) names no patient: nothing matches.
    assert ids(search(tenant, path, {"subject": f"Group/{a}"})) == []
    assert ids(search(tenant, path, {"subject:Group": a})) == []
    # An absolute reference to another server is not one of ours.
    elsewhere = f"https://elsewhere.example/fhir/Patient/{a}"
    assert ids(search(tenant, path, {"subject": elsewhere})) == []
    assert ids(search(tenant, path, {"patient": elsewhere})) == []


@pytest.mark.parametrize("path", ["QuestionnaireResponse", "Observation"])
def test_a_repeated_parameter_narrows(tenant: Any, two_patients: Any, path: str) -> None:
    a, b, _, _ = two_patients
    # AND: one resource has one patient, so two different patients match nothing.
    assert ids(search(tenant, path, [("patient", a), ("patient", b)])) == []
    assert ids(search(tenant, path, [("patient", b), ("patient", a)])) == []
    assert ids(search(tenant, path, [("subject", f"Patient/{a}"), ("patient", b)])) == []
    assert subjects(search(tenant, path, [("patient", a), ("subject", a)])) == {f"Patient/{a}"}


def test_repeated_codes_and_canonicals_narrow(tenant: Any) -> None:
    patient_id = tenant.patient()
    submit(tenant, patient_id, "phq9", [1] * 9, "2026-04-01T10:00:00Z")
    submit(tenant, patient_id, "gad7", [1] * 7, "2026-04-02T10:00:00Z")
    phq9_total, gad7_total = "http://loinc.org|44261-6", "http://loinc.org|70274-6"
    both = [("patient", patient_id), ("code", f"{phq9_total},{gad7_total}")]
    assert len(ids(search(tenant, "Observation", both))) == 2  # a comma is OR
    anded = [("patient", patient_id), ("code", phq9_total), ("code", gad7_total)]
    assert ids(search(tenant, "Observation", anded)) == []  # repetition is AND
    canonical = "https://kap-outcomes.dev/fhir/Questionnaire/"
    qr = [
        ("patient", patient_id),
        ("questionnaire", canonical + "phq-9"),
        ("questionnaire", canonical + "gad-7"),
    ]
    assert ids(search(tenant, "QuestionnaireResponse", qr)) == []


def test_id_searches(tenant: Any, two_patients: Any) -> None:
    a, b, form_a, form_b = two_patients
    assert ids(search(tenant, "QuestionnaireResponse", {"_id": form_a})) == [form_a]
    assert ids(search(tenant, "QuestionnaireResponse", {"_id": f"{form_a},{form_b}"})) == [
        form_b,  # newest first
        form_a,
    ]
    assert ids(search(tenant, "QuestionnaireResponse", {"_id": form_a, "patient": b})) == []
    pair = [("_id", form_a), ("_id", form_b)]
    assert ids(search(tenant, "QuestionnaireResponse", pair)) == []
    assert ids(search(tenant, "Observation", {"_id": f"{form_b}-total"})) == [f"{form_b}-total"]
    assert ids(search(tenant, "Observation", {"_id": f"{form_b}-item9"})) == []  # GAD-7 has none
    assert ids(search(tenant, "Observation", {"_id": "nothing-total"})) == []
    assert ids(search(tenant, "Patient", {"_id": a})) == [a]
    assert ids(search(tenant, "Patient", {"_id": f"{a},{b}"})) == sorted([a, b])
    assert ids(search(tenant, "Patient", {"_id": a, "identifier": f"{EXT}|nobody"})) == []
    assert ids(search(tenant, "Questionnaire", {"_id": "phq-9"})) == ["phq-9"]
    assert ids(search(tenant, "Questionnaire", {"_id": "nope"})) == []


def test_another_organisation_is_never_found_by_id_or_subject(
    tenant: Any, make_tenant: Any, two_patients: Any
) -> None:
    a, _, form_a, _ = two_patients
    other = make_tenant()
    assert ids(search(other, "QuestionnaireResponse", {"_id": form_a})) == []
    assert ids(search(other, "Observation", {"subject": a})) == []
    assert ids(search(other, "Patient", {"_id": a})) == []


def test_patient_token_cannot_widen_through_subject_or_id(tenant: Any, two_patients: Any) -> None:
    a, b, form_a, form_b = two_patients
    headers = tenant.patient_token(a)

    def as_patient(path: str, params: Any) -> Any:
        return tenant.client.get(f"/fhir/R4/{path}", params=params, headers=headers)

    assert as_patient("Observation", {"subject": f"Patient/{b}"}).status_code == 404
    assert as_patient("QuestionnaireResponse", {"subject": b}).status_code == 404
    assert ids(as_patient("QuestionnaireResponse", {"_id": form_b})) == []
    assert ids(as_patient("QuestionnaireResponse", {"_id": f"{form_a},{form_b}"})) == [form_a]
    assert ids(as_patient("Patient", {"_id": b})) == []
    assert ids(as_patient("Patient", {"_id": f"{a},{b}"})) == [a]


@pytest.mark.parametrize("name", ["patient", "subject", "_id", "code", "category", "date"])
def test_an_empty_value_is_refused_not_ignored(tenant: Any, name: str) -> None:
    resp = search(tenant, "Observation", {name: ""})
    assert resp.status_code == 400, resp.text
    issue = check(resp.json())["issue"][0]
    assert issue["code"] in {"value", "required"}
    assert issue["expression"] == [name]


UNKNOWN = [
    ("Observation", "code:not", "http://loinc.org|44261-6"),
    ("Observation", "patient:missing", "true"),
    ("Observation", "value-quantity", "gt10"),
    ("Observation", "_sort", "date"),  # oldest first: only newest first is supported
    ("Observation", "_summary", "true"),  # only _summary=count is supported
    ("QuestionnaireResponse", "status", "completed"),
    ("QuestionnaireResponse", "_include", "QuestionnaireResponse:author"),
    ("Patient", "name", "Smith"),
    ("Questionnaire", "title", "PHQ"),
]


@pytest.mark.parametrize(("path", "name", "value"), UNKNOWN)
def test_lenient_mode_leaves_ignored_parameters_out_of_the_self_link(
    tenant: Any, two_patients: Any, path: str, name: str, value: str
) -> None:
    a = two_patients[0]
    known = {"Patient": ("_id", a), "Questionnaire": ("_id", "phq-9")}.get(path, ("patient", a))
    paged = [("_count", "5")] if path in ("Observation", "QuestionnaireResponse") else []
    for headers in ({}, {"Prefer": "handling=lenient"}):
        resp = search(tenant, path, [known, (name, value), *paged], headers)
        assert self_params(resp) == [known, *paged]
        assert ids(resp)  # the rest of the search ran


@pytest.mark.parametrize(("path", "name", "value"), UNKNOWN)
def test_strict_mode_refuses_an_unknown_or_unsupported_parameter(
    tenant: Any, path: str, name: str, value: str
) -> None:
    for prefer in ("handling=strict", "return=minimal, HANDLING = strict"):
        resp = search(tenant, path, {name: value}, {"Prefer": prefer})
        assert resp.status_code == 400, resp.text
        assert resp.headers["content-type"].startswith(FHIR)
        issue = check(resp.json())["issue"][0]
        assert issue["code"] == "not-supported"
        assert issue["expression"] == [name]


def test_strict_mode_names_a_long_unknown_parameter_cut_short(tenant: Any) -> None:
    name = "x" * 100
    resp = search(tenant, "Observation", {name: "1"}, {"Prefer": "handling=strict"})
    assert resp.status_code == 400, resp.text
    issue = check(resp.json())["issue"][0]
    assert (issue["code"], issue["expression"]) == ("not-supported", ["x" * 64 + "..."])
    assert "search parameter" in issue["diagnostics"] and "x" * 65 not in issue["diagnostics"]


def test_strict_mode_accepts_every_parameter_the_capability_statement_lists(
    tenant: Any, two_patients: Any
) -> None:
    """The CapabilityStatement's searchParam lists are truthful: each is applied (not 400 in
    strict mode and echoed in the self link, except a Patient identifier), and nothing else
    is."""
    a, _, form_a, _ = two_patients
    samples = {
        "patient": a,
        "subject": f"Patient/{a}",
        "_id": form_a,
        "authored": "ge2026-01-01",
        "questionnaire": "https://kap-outcomes.dev/fhir/Questionnaire/gad-7",
        "code": "http://loinc.org|70274-6",
        "category": "survey",
        "date": "ge2026-01-01",
        "_lastUpdated": "ge2020-01-01",
        "_count": "10",
        "identifier": f"{EXT}|nobody",
        "url": "https://kap-outcomes.dev/fhir/Questionnaire/gad-7",
        "name": "a cohort",
    }
    statement = check(tenant.client.get("/fhir/R4/metadata").json())
    advertised = {r["type"]: r["searchParam"] for r in statement["rest"][0]["resource"]}
    for path, params in advertised.items():
        names = [p["name"] for p in params]
        assert "_id" in names, path
        for name in names:
            value = samples[name]
            if path == "Observation" and name == "_id":
                value = f"{form_a}-total"
            if path == "Condition" and name in ("_id", "code"):
                value = {"_id": f"{a}-depression", "code": "http://snomed.info/sct|35489007"}[name]
            resp = search(tenant, path, {name: value}, STRICT)
            assert resp.status_code == 200, (path, name, resp.text)
            # the one exception: identifier values are PHI, never in a link we generate
            echoed = [] if (path, name) == ("Patient", "identifier") else [(name, value)]
            assert self_params(resp) == echoed, (path, name)
    names = {p["name"] for p in advertised["QuestionnaireResponse"]}
    assert {"patient", "subject", "_id"} <= names
    assert {"patient", "subject", "_id"} <= {p["name"] for p in advertised["Observation"]}
