"""Signals are indexed by kind: the gates' fleet view reads the upstream alerts, which are few,
and scanned every signal for them.

Revision ID: 0010
"""

from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade():
    op.create_index("signals_by_kind", "signals", ["kind", "id"])


def downgrade():
    op.drop_index("signals_by_kind", table_name="signals")
