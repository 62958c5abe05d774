"""session versions

Revision ID: 8c1d2e3f4a5b
Revises: fcdaee88cc4d
Create Date: 2026-11-30 10:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import kap_outcomes.db

revision: str = "8c1d2e3f4a5b"
down_revision: str | None = "fcdaee88cc4d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "care_session_revisions",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("organisation_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", kap_outcomes.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("dose_route", sa.String(length=16), nullable=True),
        sa.Column("dose_amount_mg", sa.Float(), nullable=True),
        sa.Column("version_at", kap_outcomes.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("version_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_care_session_revisions_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["care_sessions.id"],
            name=op.f("fk_care_session_revisions_session_id_care_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_session_revisions")),
        sa.UniqueConstraint(
            "session_id", "version", name=op.f("uq_care_session_revisions_session_id_version")
        ),
    )
    # Existing rows are version 1, final, recorded when they were first recorded.
    with op.batch_alter_table("care_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="final")
        )
        batch_op.add_column(
            sa.Column("version_at", kap_outcomes.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("recorded_by", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True)
        )
        batch_op.add_column(
            sa.Column("version_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True)
        )
    op.execute("UPDATE care_sessions SET version_at = created_at")
    with op.batch_alter_table("care_sessions", schema=None) as batch_op:
        batch_op.alter_column(
            "version_at", existing_type=kap_outcomes.db.UTCDateTime(timezone=True), nullable=False
        )
        batch_op.alter_column("version", existing_type=sa.Integer(), server_default=None)
        batch_op.alter_column("status", existing_type=sa.String(length=16), server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("care_sessions", schema=None) as batch_op:
        batch_op.drop_column("version_reason")
        batch_op.drop_column("recorded_by")
        batch_op.drop_column("version_at")
        batch_op.drop_column("status")
        batch_op.drop_column("version")
    op.drop_table("care_session_revisions")
