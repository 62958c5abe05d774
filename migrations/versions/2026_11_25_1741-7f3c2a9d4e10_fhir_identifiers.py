"""fhir identifiers

Revision ID: 7f3c2a9d4e10
Revises: 4567b6f05eef
Create Date: 2026-11-25 17:41:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import kap_outcomes.db

revision: str = "7f3c2a9d4e10"
down_revision: str | None = "4567b6f05eef"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fhir_identifiers",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("organisation_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("assessment_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("system", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("created_at", kap_outcomes.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["assessments.id"],
            name=op.f("fk_fhir_identifiers_assessment_id_assessments"),
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_fhir_identifiers_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_identifiers")),
    )
    with op.batch_alter_table("fhir_identifiers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fhir_identifiers_assessment_id"), ["assessment_id"], unique=False
        )
        batch_op.create_index(
            "ix_fhir_identifiers_lookup", ["organisation_id", "system", "value"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("fhir_identifiers", schema=None) as batch_op:
        batch_op.drop_index("ix_fhir_identifiers_lookup")
        batch_op.drop_index(batch_op.f("ix_fhir_identifiers_assessment_id"))

    op.drop_table("fhir_identifiers")
