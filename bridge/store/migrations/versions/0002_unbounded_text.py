"""PostgreSQL: text, not varchar(n), for values that come from outside.

SQLite stores any length whatever the declared type; PostgreSQL refused a longer fingerprint,
host label or actor, so a sender got 503 and retried the whole batch for ever. Senders,
operators and rules decide these lengths, not the bridge. SQLite needs nothing.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

COLUMNS = {
    "signals": {"dedup_key": 512, "fingerprint": 255, "rule": 255, "candidate_host": 255, "host": 255},
    "incidents": {"host": 255},
    "timeline": {"actor": 255},
    "evidence": {"host": 255, "actor": 255},
}


def _alter(to_type) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in COLUMNS.items():
        for column, length in columns.items():
            op.alter_column(table, column, type_=to_type(length))


def upgrade():
    _alter(lambda _length: sa.Text())


def downgrade():
    _alter(sa.String)
