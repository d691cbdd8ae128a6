"""Safety gates: each compute host's failure-domain aggregate (gates.failure_domain
{nova: aggregate}); the storm cooldown's last storm, shared by every process.

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op

from bridge.store.tables import UTCDateTime

revision = "0008"
down_revision = "0007"


def upgrade():
    op.add_column("compute_hosts", sa.Column("aggregate", sa.String(255)))
    op.create_table(
        "gate_marks",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("at", UTCDateTime, nullable=False),
    )


def downgrade():
    op.drop_table("gate_marks")
    with op.batch_alter_table("compute_hosts") as batch:
        batch.drop_column("aggregate")
