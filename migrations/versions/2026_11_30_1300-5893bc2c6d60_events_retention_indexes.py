"""events retention: the log by age, deliveries by event

Revision ID: 5893bc2c6d60
Revises: b7e1c4d2a9f0
Create Date: 2026-11-30 13:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5893bc2c6d60"
down_revision: str | None = "b7e1c4d2a9f0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_events_occurred_at", "events", ["occurred_at"], unique=False)
    op.create_index("ix_webhook_deliveries_event", "webhook_deliveries", ["event_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_event", table_name="webhook_deliveries")
    op.drop_index("ix_events_occurred_at", table_name="events")
