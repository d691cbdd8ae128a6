"""Safety gates: each compute host's failure-domain aggregate (gates.failure_domain
{nova: aggregate}).

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade():
    op.add_column("compute_hosts", sa.Column("aggregate", sa.String(255)))


def downgrade():
    with op.batch_alter_table("compute_hosts") as batch:
        batch.drop_column("aggregate")
