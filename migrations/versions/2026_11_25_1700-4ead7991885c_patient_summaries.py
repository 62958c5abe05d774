"""patient summaries: the caseload's per-patient row, one per existing patient (stale)

Revision ID: 4ead7991885c
Revises: 59e737e65b53
Create Date: 2026-11-25 17:00:28.918708
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import kap_outcomes.db

revision: str = "4ead7991885c"
down_revision: str | None = "59e737e65b53"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "patient_summaries",
        sa.Column("patient_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("organisation_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("stale", sa.Boolean(), nullable=False),
        sa.Column("data_version", sa.Integer(), nullable=False),
        sa.Column("sort_rank", sa.Integer(), nullable=False),
        sa.Column("booster_status", sa.String(length=24), nullable=True),
        sa.Column("alert_level", sa.String(length=16), nullable=True),
        sa.Column("open_alerts", sa.Integer(), nullable=False),
        sa.Column("phq9_total", sa.Integer(), nullable=True),
        sa.Column("phq9_severity", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
        sa.Column("phq9_at", kap_outcomes.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("gad7_total", sa.Integer(), nullable=True),
        sa.Column("gad7_severity", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
        sa.Column("gad7_at", kap_outcomes.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "induction_completed_at", kap_outcomes.db.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("policy_version", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("computed_at", kap_outcomes.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_patient_summaries_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_patient_summaries_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_patient_summaries")),
    )
    with op.batch_alter_table("patient_summaries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_patient_summaries_org_rank",
            ["organisation_id", "sort_rank", "patient_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_patient_summaries_org_stale", ["organisation_id", "stale"], unique=False
        )
    # Every existing patient gets its row, stale: the first caseload read computes them all.
    op.execute(
        "INSERT INTO patient_summaries (patient_id, organisation_id, stale, data_version, "
        "sort_rank, open_alerts) SELECT id, organisation_id, TRUE, 1, 5, 0 FROM patients"
    )


def downgrade() -> None:
    with op.batch_alter_table("patient_summaries", schema=None) as batch_op:
        batch_op.drop_index("ix_patient_summaries_org_stale")
        batch_op.drop_index("ix_patient_summaries_org_rank")

    op.drop_table("patient_summaries")
