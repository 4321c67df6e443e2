"""Events: messages refused before they reached a round, kept per run.

Revision ID: 0002
Revises: 0001

Also sets the old ``schema_version`` row to 2, so that an accord from before
migrations (which accepts only 1) refuses this database instead of writing to it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_VERSION = "UPDATE accord_meta SET value = '{}' WHERE key = 'schema_version'"


def upgrade() -> None:
    """Create ``accord_events``."""
    op.create_table(
        "accord_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("round", sa.Integer(), nullable=True),
        sa.Column("participant", sa.String(length=255), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["accord_runs.id"],
            name=op.f("fk_accord_events_run_id_accord_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accord_events")),
    )
    op.create_index(
        op.f("ix_accord_events_run_id"), "accord_events", ["run_id"], unique=False
    )
    op.execute(_VERSION.format(2))


def downgrade() -> None:
    """Drop ``accord_events`` and its records."""
    op.execute(_VERSION.format(1))
    op.drop_index(op.f("ix_accord_events_run_id"), table_name="accord_events")
    op.drop_table("accord_events")
