"""bulk exports ($export jobs) and patient groups (FHIR Group cohorts)

Revision ID: b7e1c4d2a9f0
Revises: a1d4b7c9e2f0
Create Date: 2026-11-30 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import kap_outcomes.db

revision: str = "b7e1c4d2a9f0"
down_revision: str | None = "a1d4b7c9e2f0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bulk_exports",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("organisation_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("requested_by", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("group_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("types", sa.String(length=200), nullable=False),
        sa.Column("since", kap_outcomes.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("request_url", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("progress", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("lease_until", kap_outcomes.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("transaction_time", kap_outcomes.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", kap_outcomes.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", kap_outcomes.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", kap_outcomes.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_bulk_exports_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_exports")),
    )
    with op.batch_alter_table("bulk_exports", schema=None) as batch_op:
        batch_op.create_index("ix_bulk_exports_expires", ["expires_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_bulk_exports_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index("ix_bulk_exports_status", ["status", "created_at"], unique=False)

    op.create_table(
        "patient_groups",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("organisation_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("created_at", kap_outcomes.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_patient_groups_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_groups")),
    )
    with op.batch_alter_table("patient_groups", schema=None) as batch_op:
        batch_op.create_index(
            "ix_patient_groups_org_created", ["organisation_id", "created_at"], unique=False
        )

    op.create_table(
        "patient_group_members",
        sa.Column("group_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("patient_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("organisation_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["patient_groups.id"],
            name=op.f("fk_patient_group_members_group_id_patient_groups"),
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_patient_group_members_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_patient_group_members_patient_id_patients"),
        ),
        sa.PrimaryKeyConstraint("group_id", "patient_id", name=op.f("pk_patient_group_members")),
    )


def downgrade() -> None:
    op.drop_table("patient_group_members")
    with op.batch_alter_table("patient_groups", schema=None) as batch_op:
        batch_op.drop_index("ix_patient_groups_org_created")
    op.drop_table("patient_groups")
    with op.batch_alter_table("bulk_exports", schema=None) as batch_op:
        batch_op.drop_index("ix_bulk_exports_status")
        batch_op.drop_index(batch_op.f("ix_bulk_exports_organisation_id"))
        batch_op.drop_index("ix_bulk_exports_expires")
    op.drop_table("bulk_exports")
