"""patient identifiers of any system; total-only scores (items nullable, item 9 beside a total)

Revision ID: a7c3e9d1f2b4
Revises: 3c9e5a7b1d20
Create Date: 2026-11-30 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import kap_outcomes.db

revision: str = "a7c3e9d1f2b4"
down_revision: str | None = "3c9e5a7b1d20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ITEMS = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "patient_identifiers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organisation_id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("system", sa.String(length=255), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("created_at", kap_outcomes.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"]),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "organisation_id", "system", "value", name="uq_patient_identifiers_org_system_value"
        ),
    )
    with op.batch_alter_table("patient_identifiers", schema=None) as batch_op:
        batch_op.create_index("ix_patient_identifiers_patient_id", ["patient_id"], unique=False)
        batch_op.create_index(
            "ix_patient_identifiers_org_value", ["organisation_id", "value"], unique=False
        )
    for table in ("assessments", "assessment_revisions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("items", existing_type=ITEMS, nullable=True)
            batch_op.add_column(sa.Column("item9", sa.Integer(), nullable=True))


def _as_forms() -> None:
    """The earlier schema has no total-only score: each becomes a form with every item
    unanswered (item 9 in its place when it came with the total), keeping its total, severity,
    flags and alerts. Nothing clinical is deleted; only the "total-only" distinction is lost."""
    bind = op.get_bind()
    counts = {"phq9": 9, "gad7": 7}
    queries = {
        "assessments": "SELECT id, instrument, item9 FROM assessments WHERE items IS NULL",
        "assessment_revisions": (
            "SELECT r.id, a.instrument, r.item9 FROM assessment_revisions r"
            " JOIN assessments a ON a.id = r.assessment_id WHERE r.items IS NULL"
        ),
    }
    for table, query in queries.items():
        target = sa.table(table, sa.column("id"), sa.column("items", ITEMS))
        rows = bind.execute(sa.text(query)).all()
        for row_id, instrument, item9 in rows:
            items: list[int | None] = [None] * counts.get(instrument, 7)
            if instrument == "phq9":
                items[8] = item9
            bind.execute(target.update().where(target.c.id == row_id).values(items=items))


def downgrade() -> None:
    _as_forms()
    for table in ("assessment_revisions", "assessments"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("item9")
    for table in ("assessments", "assessment_revisions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("items", existing_type=ITEMS, nullable=False)
    with op.batch_alter_table("patient_identifiers", schema=None) as batch_op:
        batch_op.drop_index("ix_patient_identifiers_org_value")
        batch_op.drop_index("ix_patient_identifiers_patient_id")
    op.drop_table("patient_identifiers")
