"""risk_observations: an index on (family_id, kind, id) for the refresh read

The refresh hot path asks, per family, for the newest observations of a kind (the last
refresh's context, the burst count's newest N) and whether a mark of a kind exists. On
(family_id, at) alone each of those read every observation of the family in the window
and sorted them: O(n) per refresh, and n grows with the refresh rate (a client
refreshing in a loop made every one of its refreshes slower). Here each is a short
backward index scan.

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


def downgrade() -> None:
    op.drop_index("ix_risk_observations_family_kind", table_name="risk_observations")
