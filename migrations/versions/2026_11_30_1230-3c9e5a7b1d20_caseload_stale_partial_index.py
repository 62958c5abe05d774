"""caseload: a partial index of the stale summaries; computed_at for rows never computed

The lookup of stale summaries (the background refresh, a read's freshness) reads only the
stale rows, whatever the planner's statistics say. Rows never computed get their patient's
creation time as ``computed_at`` (an empty summary is right as of then), so that a caseload
answer can say from when every write is reflected (``as_of``). On PostgreSQL the table is
vacuumed and analysed sooner. Backward-compatible: the previous release reads and writes the
table as before.

Revision ID: 3c9e5a7b1d20
Revises: 5b7e9a1c3d2f
Create Date: 2026-11-30 12:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c9e5a7b1d20"
down_revision: str | None = "5b7e9a1c3d2f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "UPDATE patient_summaries SET computed_at = "
        "(SELECT created_at FROM patients WHERE patients.id = patient_summaries.patient_id) "
        "WHERE computed_at IS NULL"
    )
    with op.batch_alter_table("patient_summaries", schema=None) as batch_op:
        batch_op.drop_index("ix_patient_summaries_org_stale")
        batch_op.create_index(
            "ix_patient_summaries_stale",
            ["organisation_id", "computed_at"],
            unique=False,
            postgresql_where=sa.text("stale"),
            sqlite_where=sa.text("stale"),
        )

    if op.get_bind().dialect.name == "postgresql":
        # Every recompute rewrites its rows (indexed columns change, so no HOT update): the
        # stale index keeps dead entries until a vacuum. Vacuum this small, busy table after
        # 2 % of it changed rather than the default 20 %.
        op.execute(
            "ALTER TABLE patient_summaries SET (autovacuum_vacuum_scale_factor = 0.02, "
            "autovacuum_analyze_scale_factor = 0.02)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE patient_summaries RESET (autovacuum_vacuum_scale_factor, "
            "autovacuum_analyze_scale_factor)"
        )
    with op.batch_alter_table("patient_summaries", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_patient_summaries_stale",
            postgresql_where=sa.text("stale"),
            sqlite_where=sa.text("stale"),
        )
        batch_op.create_index(
            "ix_patient_summaries_org_stale", ["organisation_id", "stale"], unique=False
        )
