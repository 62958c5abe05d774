"""patient age group and conditions (CMS159): no birth date, no diagnosis codes

Revision ID: fe721c237cac
Revises: 9d2e3f4a5b6c
Create Date: 2026-11-30 10:23:11.603161
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "fe721c237cac"
down_revision: str | None = "9d2e3f4a5b6c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("age_group", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("conditions", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_column("conditions")
        batch_op.drop_column("age_group")
