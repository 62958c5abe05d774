"""caseload status index: the booster_status filter reads a range, never the organisation

Revision ID: 1e0c978e48de
Revises: 4ead7991885c
Create Date: 2026-11-25 17:06:50.046159
"""

from collections.abc import Sequence

from alembic import op

revision: str = "1e0c978e48de"
down_revision: str | None = "4ead7991885c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("patient_summaries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_patient_summaries_org_status_rank",
            ["organisation_id", "booster_status", "sort_rank", "patient_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("patient_summaries", schema=None) as batch_op:
        batch_op.drop_index("ix_patient_summaries_org_status_rank")
