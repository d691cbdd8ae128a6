"""Each incident remembers which of its host's fencing methods it is trying, and which attempt.

Existing incidents are on their first method, first attempt: what the one driver they had was.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade():
    op.add_column("incidents", sa.Column("fence_method", sa.Integer, nullable=False, server_default="0"))
    op.add_column("incidents", sa.Column("fence_attempt", sa.Integer, nullable=False, server_default="0"))


def downgrade():
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("fence_attempt")
        batch.drop_column("fence_method")
