"""dashboard: one-time sign-in codes and browser sessions (hashed)

Revision ID: a1d4b7c9e2f0
Revises: a7c3e9d1f2b4
Create Date: 2026-11-30 12:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kap_outcomes.db

revision: str = "a1d4b7c9e2f0"
down_revision: str | None = "a7c3e9d1f2b4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dashboard_signin_codes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organisation_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", kap_outcomes.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", kap_outcomes.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", kap_outcomes.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
    )
    op.create_table(
        "dashboard_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("organisation_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=36), nullable=False),
        sa.Column("token_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", kap_outcomes.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", kap_outcomes.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", kap_outcomes.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"]),
        sa.ForeignKeyConstraint(["token_id"], ["api_tokens.id"]),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    with op.batch_alter_table("dashboard_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dashboard_sessions_organisation_id"), ["organisation_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("dashboard_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dashboard_sessions_organisation_id"))
    op.drop_table("dashboard_sessions")
    op.drop_table("dashboard_signin_codes")
