"""one active course per patient: a partial unique index, and duplicates closed first

Concurrent requests could leave a patient with several active courses (check-then-write,
fixed in the service with a row lock); the index makes the database refuse it outright.

Revision ID: b4271e5beea5
Revises: e1aea59ffe68
Create Date: 2026-11-25 17:36:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b4271e5beea5"
down_revision: str | None = "e1aea59ffe68"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = sa.text("ended_at IS NULL")


def upgrade() -> None:
    # Keep the latest started active course of each patient (as the service reads it) and
    # close the others when the newest of them was created, as creating it would have.
    op.execute(
        """
        UPDATE courses SET ended_at = (
            SELECT max(a.created_at) FROM courses a
            WHERE a.patient_id = courses.patient_id AND a.ended_at IS NULL
        )
        WHERE ended_at IS NULL AND EXISTS (
            SELECT 1 FROM courses b
            WHERE b.patient_id = courses.patient_id AND b.ended_at IS NULL
              AND (b.started_at > courses.started_at
                   OR (b.started_at = courses.started_at AND b.id > courses.id))
        )
        """
    )
    op.create_index(
        "uq_courses_patient_active",
        "courses",
        ["patient_id"],
        unique=True,
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("uq_courses_patient_active", table_name="courses")
