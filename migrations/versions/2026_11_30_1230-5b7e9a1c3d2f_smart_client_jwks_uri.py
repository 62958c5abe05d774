"""smart clients: a key set by URL (jwks_uri) instead of an inline jwks, and an update time

Revision ID: 5b7e9a1c3d2f
Revises: fe721c237cac
Create Date: 2026-11-30 12:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import kap_outcomes.db

revision: str = "5b7e9a1c3d2f"
down_revision: str | None = "fe721c237cac"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("smart_clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("jwks_uri", sa.String(length=2000), nullable=True))
        batch_op.add_column(
            sa.Column("updated_at", kap_outcomes.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.alter_column("jwks", existing_type=_JSON, nullable=True)


def downgrade() -> None:
    # a client registered by URL has no inline key set to fall back on: it is revoked, and
    # keeps an empty set (no key matches, so it cannot authenticate)
    op.execute(
        "UPDATE smart_clients SET revoked_at = created_at, jwks = '{\"keys\": []}' "
        "WHERE jwks IS NULL"
    )
    with op.batch_alter_table("smart_clients", schema=None) as batch_op:
        batch_op.alter_column("jwks", existing_type=_JSON, nullable=False)
        batch_op.drop_column("updated_at")
        batch_op.drop_column("jwks_uri")
