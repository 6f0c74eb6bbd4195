"""Indexes for two per-request reads that scanned

- risk_observations (family_id, kind, id), in place of (family_id, at): every read of a
  family's observations names a kind and wants the newest first (the last refresh's
  context, the burst count's newest N, whether a mark exists). On (family_id, at) each
  read every observation of the family in the window and sorted them: O(n) per
  refresh, and n grows with the refresh rate (a client refreshing in a loop made every
  one of its refreshes slower). Here each is a short backward index scan.
- sessions (actor_jti): revoking an access token ends the impersonation sessions opened
  with it as the actor token (``lifecycle.end_impersonations``); without an index that
  lookup read every session, on every access-token revocation.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_risk_observations_family_kind", "risk_observations",
                    ["family_id", "kind", "id"])
    op.drop_index("ix_risk_observations_family", table_name="risk_observations")
    op.create_index("ix_sessions_actor_jti", "sessions", ["actor_jti"])


def downgrade() -> None:
    op.drop_index("ix_sessions_actor_jti", table_name="sessions")
    op.create_index("ix_risk_observations_family", "risk_observations",
                    ["family_id", "at"])
    op.drop_index("ix_risk_observations_family_kind", table_name="risk_observations")
