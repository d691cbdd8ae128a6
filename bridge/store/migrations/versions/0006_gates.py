"""Safety gates: approvals a person gave, per incident and gate; the global pause (its history:
the latest row says); what Nova said of each compute service (its heartbeat and who disabled
it); fencing starts found by time.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

from bridge.store.tables import UTCDateTime

revision = "0006"
down_revision = "0005"


def upgrade():
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
        sa.Column("gate", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(255).with_variant(sa.Text(), "postgresql"), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
    )
    op.create_index("approvals_by_incident", "approvals", ["incident_id", "gate"])
    op.create_table(
        "pauses",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("actor", sa.String(255).with_variant(sa.Text(), "postgresql"), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
    )
    op.add_column("compute_hosts", sa.Column("disabled_reason", sa.Text))
    op.add_column("compute_hosts", sa.Column("updated_at", UTCDateTime))
    op.create_index("timeline_by_state", "timeline", ["to_state", "at"])


def downgrade():
    op.drop_index("timeline_by_state", "timeline")
    with op.batch_alter_table("compute_hosts") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("disabled_reason")
    op.drop_table("pauses")
    op.drop_index("approvals_by_incident", "approvals")
    op.drop_table("approvals")
