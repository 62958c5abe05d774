"""A patient's age group and recorded conditions in its FHIR Patient resource."""

from __future__ import annotations

import uuid
from typing import Any

from .test_fhir_read import fhir_get

SNOMED = "http://snomed.info/sct"
AGE = "https://kap-outcomes.dev/fhir/StructureDefinition/age-group"
CONDITION = "https://kap-outcomes.dev/fhir/StructureDefinition/recorded-condition"


def _create(tenant: Any, **fields: Any) -> str:
    body = {"external_id": f"ext-{uuid.uuid4()}", **fields}
    resp = tenant.post("/v1/patients", body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def test_age_group_and_conditions_are_extensions_with_snomed_codes(tenant: Any) -> None:
    pid = _create(
        tenant,
        age_group="12-17",
        conditions=["depression", "bipolar_disorder", "hospice_or_palliative_care", "deceased"],
    )
    patient = fhir_get(tenant, f"Patient/{pid}")  # checked by two FHIR R4 libraries
    extensions = patient["extension"]
    assert {"url": AGE, "valueCode": "12-17"} in extensions
    codes = {
        coding["code"]
        for e in extensions
        if e["url"] == CONDITION
        for coding in e["valueCodeableConcept"].get("coding", [])
    }
    # SNOMED CT: 35489007 Depressive disorder, 13746004 Bipolar disorder.
    assert codes == {"35489007", "13746004"}
    texts = {e["valueCodeableConcept"]["text"] for e in extensions if e["url"] == CONDITION}
    assert "Hospice or palliative care" in texts
    assert patient["deceasedBoolean"] is True


def test_a_patient_without_them_has_no_extension(tenant: Any) -> None:
    patient = fhir_get(tenant, f"Patient/{tenant.patient()}")
    assert "extension" not in patient and "deceasedBoolean" not in patient
