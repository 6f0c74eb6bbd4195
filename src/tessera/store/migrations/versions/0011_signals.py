"""outbound signals: back-channel logout registrations, the clients of each session, SSF streams and subjects, the
signal outbox, durable deliveries (retry, dead letters), fan-out cursors, risk observations

Revision ID: 0011
Revises: 0009 (written against 0007; re-chained after 0009 when main was merged in, so
the branch has one head)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "client_logout",
        sa.Column("client_id", sa.String(length=64), primary_key=True),
        sa.Column("uri", sa.String(length=2000), nullable=False),
        sa.Column("session_required", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "ssf_streams",
        sa.Column("stream_id", sa.String(length=64), primary_key=True),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("aud", sa.String(length=2000), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("endpoint_url", sa.String(length=2000), nullable=True),
        sa.Column("events_requested", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.String(length=500), nullable=True),
        sa.Column("default_subjects", sa.String(length=8), nullable=False),
        sa.Column("sealed_authorization", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
    )
    op.create_index("ix_ssf_streams_client_id", "ssf_streams", ["client_id"])
    op.create_table(
        "ssf_subjects",
        sa.Column("stream_id", sa.String(length=64), primary_key=True),
        sa.Column("subject_key", sa.String(length=600), primary_key=True),
        sa.Column("subject", sa.JSON(), nullable=False),
    )
    op.create_table(
        "signal_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(length=200), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_table(
        "signal_cursors",
        sa.Column("name", sa.String(length=32), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "signal_deliveries",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("dedupe", sa.String(length=400), nullable=False, unique=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("event", sa.String(length=200), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("next_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("lease_until", sa.Double(), nullable=True),
        sa.Column("delivered_at", sa.Double(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
    )
    op.create_index("ix_signal_deliveries_due", "signal_deliveries", ["status", "next_at"])
    op.create_index("ix_signal_deliveries_target", "signal_deliveries", ["target", "status"])
    op.create_table(
        "signal_session_clients",
        sa.Column("sid", sa.String(length=64), primary_key=True),
        sa.Column("client_id", sa.String(length=64), primary_key=True),
        sa.Column("at", sa.Double(), nullable=False),
    )
    op.create_table(
        "risk_observations",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("family_id", sa.String(length=64), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
    )
    op.create_index("ix_risk_observations_family", "risk_observations", ["family_id", "at"])
    op.create_index("ix_risk_observations_address", "risk_observations", ["address", "at"])


def downgrade() -> None:
    op.drop_table("risk_observations")
    op.drop_table("signal_session_clients")
    op.drop_table("signal_deliveries")
    op.drop_table("signal_cursors")
    op.drop_table("signal_events")
    op.drop_table("ssf_subjects")
    op.drop_table("ssf_streams")
    op.drop_table("client_logout")
