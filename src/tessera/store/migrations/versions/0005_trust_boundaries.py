"""trust boundaries: tenants that can be suspended, roles held by users, consent for
third-party clients, TOTP recovery codes, user tombstones, impersonation sessions tied to
the administrator's session and token, token-exchange trust per client

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("suspended_at", sa.Double(), nullable=True))
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("third_party", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("subject_audiences", sa.JSON(), nullable=False,
                                      server_default=sa.text("'[]'")))
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_at", sa.Double(), nullable=True))
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor_sid", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("actor_jti", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_sessions_actor_sid", ["actor_sid"], unique=False)
    op.create_table(
        "user_roles",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("granted_at", sa.Double(), nullable=False),
        sa.Column("granted_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.user_id"]),
        sa.PrimaryKeyConstraint("user_id", "role"),
    )
    op.create_table(
        "consents",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("granted_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.user_id"]),
        sa.PrimaryKeyConstraint("user_id", "client_id"),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("used_at", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.user_id"]),
        sa.PrimaryKeyConstraint("user_id", "code_hash"),
    )
    # Every tenant already named by a user or a client (and the default one) is registered,
    # so suspension and `tenants ls` know them.
    op.execute(sa.text(
        "INSERT INTO tenants (tenant_id, name, created_at) "
        "SELECT t.tenant_id, t.tenant_id, :now FROM ("
        "  SELECT 'default' AS tenant_id"
        "  UNION SELECT tenant_id FROM users"
        "  UNION SELECT tenant_id FROM clients WHERE tenant_id IS NOT NULL"
        ") t WHERE t.tenant_id NOT IN (SELECT tenant_id FROM tenants)"
    ).bindparams(now=time.time()))


def downgrade() -> None:
    op.drop_table("recovery_codes")
    op.drop_table("consents")
    op.drop_table("user_roles")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_actor_sid")
        batch_op.drop_column("actor_jti")
        batch_op.drop_column("actor_sid")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("subject_audiences")
        batch_op.drop_column("third_party")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("suspended_at")
