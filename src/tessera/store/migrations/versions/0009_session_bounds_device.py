"""session bounds and device authorization: per-tenant session policies (idle and
absolute timeouts, concurrent session limit), the address a session was opened from and
the device client of a device session, device authorization requests (RFC 8628, codes
stored hashed)

Revision ID: 0009
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_address", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("device_client_id", sa.String(length=64),
                                      nullable=True))
    op.create_table(
        "session_policies",
        sa.Column("tenant_id", sa.String(length=64), primary_key=True),
        sa.Column("idle_timeout", sa.Double(), nullable=True),
        sa.Column("absolute_timeout", sa.Double(), nullable=True),
        sa.Column("max_sessions", sa.Integer(), nullable=True),
        sa.Column("on_limit", sa.String(length=16), nullable=True),
        sa.Column("updated_at", sa.Double(), nullable=False),
    )
    op.create_table(
        "device_codes",
        sa.Column("device_code_hash", sa.String(length=64), primary_key=True),
        sa.Column("user_code_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("audience", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("interval", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_polled_at", sa.Double(), nullable=True),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("sid", sa.String(length=64), nullable=True),
        sa.Column("decided_at", sa.Double(), nullable=True),
        sa.Column("client_address", sa.String(length=64), nullable=True),
    )
    op.create_index("ix_device_codes_user_code_hash", "device_codes", ["user_code_hash"],
                    unique=True)


def downgrade() -> None:
    op.drop_index("ix_device_codes_user_code_hash", table_name="device_codes")
    op.drop_table("device_codes")
    op.drop_table("session_policies")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("device_client_id")
        batch_op.drop_column("client_address")
