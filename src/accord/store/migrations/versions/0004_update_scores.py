"""Robustness (issue 10): per-update anomaly scores, and the ``quarantined`` outcome.

Revision ID: 0004
Revises: 0003

Adds ``accord_update_scores`` (one row per participant per scored round) and lets
an outcome's status be ``quarantined`` (a valid update the robustness policy kept
out of aggregation). On SQLite the outcome table is copied to change its CHECK
constraint (Alembic's batch mode); on PostgreSQL the constraint is replaced.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_STATUS = "ck_accord_outcomes_status"
_OLD = "status IN ('ok', 'failed', 'timeout', 'rejected')"
_NEW = "status IN ('ok', 'failed', 'timeout', 'rejected', 'quarantined')"


def _outcome_status(condition: str) -> None:
    with op.batch_alter_table("accord_outcomes") as batch:
        batch.drop_constraint(op.f(_STATUS), type_="check")
        batch.create_check_constraint(op.f(_STATUS), condition)


def upgrade() -> None:
    """Create ``accord_update_scores``; allow the ``quarantined`` outcome."""
    op.create_table(
        "accord_update_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("participant", sa.String(length=255), nullable=False),
        *(
            sa.Column(name, sa.Double(), nullable=True)
            for name in (
                "norm",
                "cosine",
                "mean_distance",
                "median_distance",
                "nearest_ratio",
                "norm_z",
                "distance_z",
            )
        ),
        sa.Column("flags", sa.Text(), nullable=False),
        sa.Column("excluded", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["accord_rounds.id"],
            name=op.f("fk_accord_update_scores_round_id_accord_rounds"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accord_update_scores")),
        sa.UniqueConstraint(
            "round_id", "participant", name=op.f("uq_accord_update_scores_round_id")
        ),
    )
    op.create_index(
        op.f("ix_accord_update_scores_round_id"),
        "accord_update_scores",
        ["round_id"],
        unique=False,
    )
    _outcome_status(_NEW)


def downgrade() -> None:
    """Drop the scores; quarantined outcomes become ``rejected`` (reason kept)."""
    op.execute(
        "UPDATE accord_outcomes SET status = 'rejected' WHERE status = 'quarantined'"
    )
    _outcome_status(_OLD)
    op.drop_index(
        op.f("ix_accord_update_scores_round_id"), table_name="accord_update_scores"
    )
    op.drop_table("accord_update_scores")
