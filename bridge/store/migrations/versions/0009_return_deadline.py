"""The wait for Nova to take a returned host back gets a column of its own (it borrowed
fence_deadline). An incident returning now carries its wait over.

Revision ID: 0009
"""

import sqlalchemy as sa
from alembic import op

from bridge.store.tables import UTCDateTime

revision = "0009"
down_revision = "0008"


def upgrade():
    op.add_column("incidents", sa.Column("return_deadline", UTCDateTime))
    op.execute("UPDATE incidents SET return_deadline = fence_deadline WHERE state = 'returning'")


def downgrade():
    op.execute("UPDATE incidents SET fence_deadline = return_deadline WHERE state = 'returning'")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("return_deadline")
