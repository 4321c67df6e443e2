"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}

Say what changes and why; keep to portable operations (SQLite and PostgreSQL), with
``op.batch_alter_table`` for anything SQLite cannot ALTER in place.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
revision = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels: str | None = ${repr(branch_labels)}
depends_on: str | None = ${repr(depends_on)}


def upgrade() -> None:
    """Apply the change."""
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    """Undo the change."""
    ${downgrades if downgrades else "pass"}
