"""The benchmark's baseline: a database-free FastAPI app that parses the same body with the
same model and answers with an ``AssessmentPublic`` of the same size, without auth or storage.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from kap_outcomes.app import freeze_startup_objects
from kap_outcomes.assessments.models import (
    AssessmentCreate,
    AssessmentPublic,
    AssessmentStatus,
    Source,
)
from kap_outcomes.clinical.scoring import score


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    freeze_startup_objects()  # the same process-level tuning as the real app, for fairness
    yield


app = FastAPI(lifespan=lifespan)


@app.post("/v1/patients/{patient_id}/assessments", status_code=201)
async def submit(patient_id: str, data: AssessmentCreate) -> AssessmentPublic:
    result = score(data.instrument, data.items)
    return AssessmentPublic(
        id=str(uuid.uuid4()),
        patient_id=patient_id,
        course_id=None,
        session_id=data.session_id,
        instrument=data.instrument,
        items=data.items,
        difficulty=data.difficulty,
        administered_at=data.administered_at,
        recorded_at=datetime.now(UTC),
        source=data.source or Source.clinician,
        valid=result.valid,
        total=result.total,
        raw_total=result.raw_total,
        prorated=result.prorated,
        missing_items=result.missing_items,
        severity=result.severity.value if result.severity else None,
        subscores=dict(result.subscores),
        risk=None,
        flags=list(result.flags),
        version=1,
        status=AssessmentStatus.final,
        alerts=[],
    )
