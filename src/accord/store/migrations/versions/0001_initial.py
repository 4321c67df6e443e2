"""The store as accord created it before migrations: runs, rounds, outcomes, metrics.

Revision ID: 0001
Revises: (none)

A database made by that accord (``create_all`` plus a ``schema_version`` row of 1)
has exactly these tables and is stamped with this revision instead of running it.
Timestamps are ``DateTime(timezone=True)`` and ``value`` a plain double: the models'
UTC and NaN handling happen in Python (:mod:`accord.store.columns`), not in SQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the tables, and the version row older accords look for."""
    meta = op.create_table(
        "accord_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_accord_meta")),
    )
    op.bulk_insert(meta, [{"key": "schema_version", "value": "1"}])
    _create_runs()
    _create_rounds()
    _create_outcomes()
    _create_metrics()


def downgrade() -> None:
    """Drop every table (and with them every run)."""
    op.drop_index(op.f("ix_accord_metrics_round_id"), table_name="accord_metrics")
    op.drop_table("accord_metrics")
    op.drop_table("accord_outcomes")
    op.drop_table("accord_rounds")
    op.drop_index(op.f("ix_accord_runs_created_at"), table_name="accord_runs")
    op.drop_table("accord_runs")
    op.drop_table("accord_meta")


def _create_runs() -> None:
    op.create_table(
        "accord_runs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("rounds_planned", sa.Integer(), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed', 'aborted')",
            name=op.f("ck_accord_runs_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accord_runs")),
    )
    op.create_index(
        op.f("ix_accord_runs_created_at"), "accord_runs", ["created_at"], unique=False
    )


def _create_rounds() -> None:
    op.create_table(
        "accord_rounds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("global_digest", sa.String(length=128), nullable=False),
        sa.Column("selected", sa.Text(), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('completed', 'failed')", name=op.f("ck_accord_rounds_status")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["accord_runs.id"],
            name=op.f("fk_accord_rounds_run_id_accord_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accord_rounds")),
        sa.UniqueConstraint("run_id", "number", name=op.f("uq_accord_rounds_run_id")),
    )


def _create_outcomes() -> None:
    op.create_table(
        "accord_outcomes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("participant", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("num_examples", sa.BigInteger(), nullable=False),
        sa.Column("update_digest", sa.String(length=128), nullable=True),
        sa.Column("duration_s", sa.Double(), nullable=False),
        sa.Column("metrics", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "status IN ('ok', 'failed', 'timeout', 'rejected')",
            name=op.f("ck_accord_outcomes_status"),
        ),
        sa.CheckConstraint(
            "num_examples >= 0", name=op.f("ck_accord_outcomes_num_examples")
        ),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["accord_rounds.id"],
            name=op.f("fk_accord_outcomes_round_id_accord_rounds"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accord_outcomes")),
        sa.UniqueConstraint(
            "round_id", "participant", name=op.f("uq_accord_outcomes_round_id")
        ),
    )


def _create_metrics() -> None:
    op.create_table(
        "accord_metrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("participant", sa.String(length=255), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.CheckConstraint(
            "scope IN ('central', 'federated', 'site', 'train')",
            name=op.f("ck_accord_metrics_scope"),
        ),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["accord_rounds.id"],
            name=op.f("fk_accord_metrics_round_id_accord_rounds"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accord_metrics")),
    )
    op.create_index(
        op.f("ix_accord_metrics_round_id"), "accord_metrics", ["round_id"], unique=False
    )
