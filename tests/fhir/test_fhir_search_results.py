"""What searchsets carry: ``total``, ``_summary=count``, ``_include`` and ``_sort=-date``;
and scores that round-trip through fhirclient and fhir.resources back into the server."""

from __future__ import annotations

import json
from typing import Any

from fhir.resources.R4B.observation import Observation as R4BObservation
from fhirclient.models.observation import Observation as ClientObservation

from kap_outcomes.auth.models import Role

from .conformance import check

FHIR = "application/fhir+json"
STRICT = {"Prefer": "handling=strict"}


def search(tenant: Any, path: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
    resp = tenant.client.get(
        f"/fhir/R4/{path}", params=params, headers={**tenant.headers(), **(headers or {})}
    )
    assert resp.status_code == 200, resp.text
    return check(resp.json())


def clinic(tenant: Any) -> tuple[str, list[str], str]:
    """A patient with three PHQ-9 forms (days 1-3 of March) and one total-only PHQ-9 (day 4)."""
    pid = tenant.patient()
    forms = []
    for day in (1, 2, 3):
        resp = tenant.post(
            f"/v1/patients/{pid}/assessments",
            {
                "instrument": "phq9",
                "items": [1] * 9,
                "administered_at": f"2026-03-0{day}T09:00:00Z",
            },
        )
        forms.append(resp.json()["id"])
    resp = tenant.post(
        f"/v1/patients/{pid}/assessments",
        {"instrument": "phq9", "total": 11, "administered_at": "2026-03-04T09:00:00Z"},
    )
    return pid, forms, resp.json()["id"]


def test_total_counts_every_match_not_the_page(tenant: Any) -> None:
    pid, forms, total_only = clinic(tenant)
    # 3 forms x (total, item 9) + the total-only score's total (no item 9 came with it)
    page = search(tenant, "Observation", patient=pid, _count=2)
    assert page["total"] == 7 and len(page["entry"]) == 2
    assert any(link["relation"] == "next" for link in page["link"])
    assert search(tenant, "Observation", patient=pid, code="44260-8")["total"] == 3
    assert search(tenant, "Observation", patient=pid, code="44261-6")["total"] == 4
    assert search(tenant, "QuestionnaireResponse", patient=pid)["total"] == 3  # forms only
    by_id = search(tenant, "Observation", _id=f"{forms[0]}-total,{total_only}-total")
    assert by_id["total"] == 2
    assert search(tenant, "Patient", _id=pid)["total"] == 1
    assert search(tenant, "Questionnaire")["total"] == 3


def test_summary_count_is_the_total_alone(tenant: Any) -> None:
    pid, _, _ = clinic(tenant)
    for path, expected in (("Observation", 7), ("QuestionnaireResponse", 3), ("Condition", 0)):
        bundle = search(tenant, path, STRICT, patient=pid, _summary="count")
        assert bundle["total"] == expected
        assert bundle["entry"] == []
        assert [link["relation"] for link in bundle["link"]] == ["self"]
        assert "_summary=count" in bundle["link"][0]["url"]


def test_include_the_patient_and_the_forms(tenant: Any) -> None:
    pid, forms, total_only = clinic(tenant)
    bundle = search(
        tenant,
        "QuestionnaireResponse",
        STRICT,
        patient=pid,
        _include="QuestionnaireResponse:subject",
    )
    modes = [(e["search"]["mode"], e["resource"]["resourceType"]) for e in bundle["entry"]]
    assert modes == [("match", "QuestionnaireResponse")] * 3 + [("include", "Patient")]
    assert bundle["total"] == 3  # included resources are not matches
    assert bundle["entry"][-1]["resource"]["id"] == pid

    totals = search(
        tenant,
        "Observation",
        STRICT,
        patient=pid,
        code="http://loinc.org|44261-6",
        _include="Observation:derived-from",
    )
    matches = [e["resource"] for e in totals["entry"] if e["search"]["mode"] == "match"]
    included = [e["resource"] for e in totals["entry"] if e["search"]["mode"] == "include"]
    assert [o["id"] for o in matches] == [f"{total_only}-total"] + [
        f"{f}-total" for f in reversed(forms)
    ]
    assert sorted(r["id"] for r in included) == sorted(forms)
    assert {r["resourceType"] for r in included} == {"QuestionnaireResponse"}
    derived = {d["reference"] for o in matches for d in o.get("derivedFrom", [])}
    assert derived == {f"QuestionnaireResponse/{f}" for f in forms}


def test_sort_newest_first(tenant: Any) -> None:
    pid, forms, _ = clinic(tenant)
    plain = search(tenant, "Observation", patient=pid, code="44261-6")
    sorted_ = search(tenant, "Observation", STRICT, patient=pid, code="44261-6", _sort="-date")
    dates = [e["resource"]["effectiveDateTime"] for e in sorted_["entry"]]
    assert dates == sorted(dates, reverse=True) and dates[0].startswith("2026-03-04")
    assert [e["resource"]["id"] for e in plain["entry"]] == [
        e["resource"]["id"] for e in sorted_["entry"]
    ]
    assert "_sort=-date" in sorted_["link"][0]["url"]
    forms_sorted = search(tenant, "QuestionnaireResponse", STRICT, patient=pid, _sort="-authored")
    assert [e["resource"]["id"] for e in forms_sorted["entry"]] == list(reversed(forms))
    # oldest first is not offered: strict says so, lenient leaves it out of the self link
    refused = tenant.client.get(
        "/fhir/R4/Observation",
        params={"patient": pid, "_sort": "date"},
        headers={**tenant.headers(), **STRICT},
    )
    assert refused.status_code == 400
    assert check(refused.json())["issue"][0]["code"] == "not-supported"


def test_a_served_score_round_trips_through_both_libraries(tenant: Any) -> None:
    pid, _, total_only = clinic(tenant)
    served = tenant.get(f"/fhir/R4/Observation/{total_only}-total").json()
    for parsed in (
        ClientObservation(served, strict=True).as_json(),
        json.loads(R4BObservation.model_validate(served).model_dump_json()),
    ):
        again = {k: v for k, v in parsed.items() if k not in ("id", "meta", "issued")}
        again["effectiveDateTime"] = "2026-03-05T09:00:00Z"
        resp = tenant.client.post(
            "/fhir/R4/Observation",
            json=again,
            headers={**tenant.headers(Role.integration), "Content-Type": FHIR},
        )
        assert resp.status_code == 201, resp.text
        back = check(resp.json())
        assert back["valueQuantity"]["value"] == 11
        assert back["interpretation"][0]["coding"][0]["code"] == "moderate"
        assert back["subject"] == {"reference": f"Patient/{pid}"}
