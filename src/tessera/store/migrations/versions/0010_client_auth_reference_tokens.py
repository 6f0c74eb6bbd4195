"""client authentication without shared secrets and reference access tokens: a client's
auth method, access-token format and key material; opaque access tokens (hashed) with
the claims they stand for; used client-assertion ``jti`` values until they expire

Revision ID: 0010
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("auth_method", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("access_token_format", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("auth_config", sa.JSON(), nullable=True))
    op.create_table(
        "reference_tokens",
        sa.Column("token_hash", sa.String(length=64), primary_key=True),
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("sid", sa.String(length=64), nullable=True),
        sa.Column("claims", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
    )
    op.create_index("ix_reference_tokens_expires_at", "reference_tokens", ["expires_at"])
    op.create_table(
        "client_assertion_jtis",
        sa.Column("client_id", sa.String(length=64), primary_key=True),
        sa.Column("jti", sa.String(length=200), primary_key=True),
        sa.Column("expires_at", sa.Double(), nullable=False),
    )
    op.create_index("ix_client_assertion_jtis_expires_at", "client_assertion_jtis",
                    ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_client_assertion_jtis_expires_at", table_name="client_assertion_jtis")
    op.drop_table("client_assertion_jtis")
    op.drop_index("ix_reference_tokens_expires_at", table_name="reference_tokens")
    op.drop_table("reference_tokens")
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("auth_config")
        batch.drop_column("access_token_format")
        batch.drop_column("auth_method")
