"""verifier registry and logout completion: which verifiers report, what they applied,
and when the last live one applied each revocation event

Revision ID: 0007
Revises: 0005 (written against 0004; re-chained after 0005 when main was merged in)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verifier_reports",
        sa.Column("client_id", sa.String(length=64), primary_key=True),
        sa.Column("verifier_id", sa.String(length=200), primary_key=True),
        sa.Column("service", sa.String(length=200), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("first_seen", sa.Double(), nullable=False),
        sa.Column("reported_at", sa.Double(), nullable=False),
        sa.Column("lag", sa.Double(), nullable=True),
    )
    op.create_table(
        "revocation_completions",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  primary_key=True, autoincrement=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("completed_at", sa.Double(), nullable=False),
        sa.Column("verifiers", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("revocation_completions")
    op.drop_table("verifier_reports")
