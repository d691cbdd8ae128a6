"""The failed host's servers: one row per server per incident (pending, requested, done, failed).

Revision ID: 0007
"""

import sqlalchemy as sa
from alembic import op

from bridge.store.tables import Name, UTCDateTime

revision = "0007"
down_revision = "0006"


def upgrade():
    op.create_table(
        "server_actions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
        sa.Column("server_id", sa.String(64), nullable=False),
        sa.Column("name", Name(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("vm_state", sa.String(32)),
        sa.Column("task_state", sa.String(32)),
        sa.Column("user_locked", sa.Boolean, nullable=False),
        sa.Column("locked_by_bridge", sa.Boolean, nullable=False),
        sa.Column("target_host", Name()),
        sa.Column("result_host", Name()),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("listed_at", UTCDateTime),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("server_actions_by_incident", "server_actions", ["incident_id", "server_id"], unique=True)


def downgrade():
    op.drop_index("server_actions_by_incident", "server_actions")
    op.drop_table("server_actions")
