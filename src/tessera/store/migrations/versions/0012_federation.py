"""federation: upstream identity providers, links from upstream subjects to users,
sessions opened through an upstream, replay memory for inbound logout tokens and events

Revision ID: 0012
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_providers",
        sa.Column("idp_id", sa.String(length=64), primary_key=True),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("sealed_secret", sa.Text(), nullable=False),
        sa.Column("scope", sa.String(length=500), nullable=False),
        sa.Column("mapping", sa.JSON(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("ssf_poll_url", sa.Text(), nullable=True),
        sa.UniqueConstraint("tenant_id", "name", name="uq_identity_providers_tenant_name"),
    )
    op.create_table(
        "external_identities",
        sa.Column("idp_id", sa.String(length=64), primary_key=True),
        sa.Column("subject", sa.String(length=255), primary_key=True),
        sa.Column("user_id", sa.String(length=64), sa.ForeignKey("users.user_id"),
                  nullable=False),
        sa.Column("profile", sa.JSON(), nullable=False),
        sa.Column("profile_hash", sa.String(length=64), nullable=False),
        sa.Column("linked_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
    )
    op.create_index("ix_external_identities_user_id", "external_identities", ["user_id"])
    op.create_table(
        "upstream_sessions",
        sa.Column("sid", sa.String(length=64), primary_key=True),
        sa.Column("idp_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("upstream_sid", sa.String(length=255), nullable=True),
    )
    op.create_index("ix_upstream_sessions_idp_subject", "upstream_sessions",
                    ["idp_id", "subject"])
    op.create_index("ix_upstream_sessions_idp_sid", "upstream_sessions",
                    ["idp_id", "upstream_sid"])
    op.create_table(
        "inbound_jtis",
        sa.Column("idp_id", sa.String(length=64), primary_key=True),
        sa.Column("jti", sa.String(length=255), primary_key=True),
        sa.Column("expires_at", sa.Double(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("inbound_jtis")
    op.drop_index("ix_upstream_sessions_idp_sid", table_name="upstream_sessions")
    op.drop_index("ix_upstream_sessions_idp_subject", table_name="upstream_sessions")
    op.drop_table("upstream_sessions")
    op.drop_index("ix_external_identities_user_id", table_name="external_identities")
    op.drop_table("external_identities")
    op.drop_table("identity_providers")
