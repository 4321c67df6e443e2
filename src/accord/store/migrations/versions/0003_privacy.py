"""Privacy: the differential privacy spent once each round is done.

Revision ID: 0003
Revises: 0002

One row per account (the federation's, or one site's) per round: cumulative
epsilon at delta, and the round's mechanism (noise multiplier, sampling rate,
clip). Older rounds simply have none.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``accord_privacy``."""
    op.create_table(
        "accord_privacy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("participant", sa.String(length=255), nullable=True),
        sa.Column("epsilon", sa.Double(), nullable=False),
        sa.Column("delta", sa.Double(), nullable=False),
        sa.Column("accountant", sa.String(length=16), nullable=False),
        sa.Column("noise_multiplier", sa.Double(), nullable=False),
        sa.Column("sampling_rate", sa.Double(), nullable=False),
        sa.Column("clip", sa.Double(), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "level IN ('participant', 'record')", name=op.f("ck_accord_privacy_level")
        ),
        sa.CheckConstraint("epsilon >= 0", name=op.f("ck_accord_privacy_epsilon")),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["accord_rounds.id"],
            name=op.f("fk_accord_privacy_round_id_accord_rounds"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accord_privacy")),
    )
    op.create_index(
        op.f("ix_accord_privacy_round_id"), "accord_privacy", ["round_id"], unique=False
    )


def downgrade() -> None:
    """Drop ``accord_privacy`` and its records."""
    op.drop_index(op.f("ix_accord_privacy_round_id"), table_name="accord_privacy")
    op.drop_table("accord_privacy")
