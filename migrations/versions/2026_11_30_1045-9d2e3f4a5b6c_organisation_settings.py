"""organisation settings: time zone

Revision ID: 9d2e3f4a5b6c
Revises: 8c1d2e3f4a5b
Create Date: 2026-11-30 10:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "9d2e3f4a5b6c"
down_revision: str | None = "8c1d2e3f4a5b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing organisations keep what they had: UTC, settings version 1.
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "timezone",
                sqlmodel.sql.sqltypes.AutoString(length=64),
                nullable=False,
                server_default="UTC",
            )
        )
        batch_op.add_column(
            sa.Column("settings_version", sa.Integer(), nullable=False, server_default="1")
        )
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.alter_column(
            "timezone",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=64),
            server_default=None,
        )
        batch_op.alter_column("settings_version", existing_type=sa.Integer(), server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("settings_version")
        batch_op.drop_column("timezone")
