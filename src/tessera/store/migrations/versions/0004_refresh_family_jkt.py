"""refresh families remember the DPoP key they are bound to (RFC 9449 §5, public clients)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("refresh_families", schema=None) as batch_op:
        batch_op.add_column(sa.Column("jkt", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refresh_families", schema=None) as batch_op:
        batch_op.drop_column("jkt")
