"""The flow a client runs, with the client openapi-python-client generates, unedited:
create a patient, submit a PHQ-9, read the signals, read a problem's ``detail``.

Run by tests/test_generated_clients.py against a live server on 127.0.0.1:
``python flow.py BASE_URL TOKEN`` prints one JSON list of what it saw.
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime

from kap_outcomes_client import AuthenticatedClient
from kap_outcomes_client.api.assessments import submit_assessment
from kap_outcomes_client.api.patients import create_patient, get_patient
from kap_outcomes_client.api.signals import get_signals
from kap_outcomes_client.models import (
    AssessmentCreate,
    AssessmentPublic,
    Instrument,
    PatientCreate,
    PatientPublic,
    Problem,
    SignalsPublic,
    Source,
)


def flow(base_url: str, token: str) -> list[str]:
    said: list[str] = []
    with AuthenticatedClient(base_url=base_url, token=token) as client:
        patient = create_patient.sync(
            client=client,
            body=PatientCreate(external_id=f"py-{uuid.uuid4()}"),
            idempotency_key=str(uuid.uuid4()),
        )
        assert isinstance(patient, PatientPublic), patient
        said.append(f"patient {patient.id}")

        assessment = submit_assessment.sync(
            patient.id,
            client=client,
            body=AssessmentCreate(
                instrument=Instrument.PHQ9,
                items=[1, 2, 1, 0, 1, 2, 1, 0, 0],
                administered_at=datetime.now(UTC),
                source=Source.CLINICIAN,
            ),
        )
        assert isinstance(assessment, AssessmentPublic), assessment
        said.append(f"phq9 total {assessment.total} severity {assessment.severity}")

        signals = get_signals.sync(patient.id, client=client)
        assert isinstance(signals, SignalsPublic), signals
        said.append(f"booster {signals.booster.status} safety {signals.safety.level}")

        missing = get_patient.sync_detailed("no-such-patient", client=client)
        problem = missing.parsed
        assert isinstance(problem, Problem), missing.content
        said.append(f"problem {problem.status} {problem.detail}")
    return said


if __name__ == "__main__":
    print(json.dumps(flow(sys.argv[1], sys.argv[2])))
