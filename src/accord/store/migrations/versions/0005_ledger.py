"""Ledger: each run's signed, hash-chained entries and the sites' receipts.

Revision ID: 0005
Revises: 0004

``accord_ledger`` holds one DSSE envelope per entry (:mod:`accord.ledger`), unique
per run and sequence number; a round's entry is written in the transaction of the
round. ``accord_receipts`` holds the sites' countersignatures, each with the
site's identity certificate (base64 DER) so that an export carries it. Runs from
before have no entries.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``accord_ledger`` and ``accord_receipts``."""
    op.create_table(
        "accord_ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("round", sa.Integer(), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.CheckConstraint("sequence >= 0", name=op.f("ck_accord_ledger_sequence")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["accord_runs.id"],
            name=op.f("fk_accord_ledger_run_id_accord_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accord_ledger")),
        sa.UniqueConstraint("run_id", "sequence", name=op.f("uq_accord_ledger_run_id")),
    )
    op.create_table(
        "accord_receipts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("participant", sa.String(length=255), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.Column("certificate", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["accord_runs.id"],
            name=op.f("fk_accord_receipts_run_id_accord_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accord_receipts")),
        sa.UniqueConstraint(
            "run_id",
            "sequence",
            "participant",
            name=op.f("uq_accord_receipts_run_id"),
        ),
    )


def downgrade() -> None:
    """Drop the receipts and the ledger."""
    op.drop_table("accord_receipts")
    op.drop_table("accord_ledger")
