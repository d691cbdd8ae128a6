"""Each incident keeps its alerts' firing and resolved counts, per source.

incidents.signal_counts is kept by intake as signals are taken in, so that a step no longer
rereads every signal of its incident. Existing incidents are counted here once.

Revision ID: 0004
"""

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade():
    op.add_column("incidents", sa.Column("signal_counts", sa.JSON))
    conn = op.get_bind()
    latest: dict[int, dict[tuple[str, str], str]] = defaultdict(dict)
    for incident_id, source, fingerprint, status in conn.execute(sa.text(
            "SELECT incident_id, source, fingerprint, status FROM signals "
            "WHERE incident_id IS NOT NULL ORDER BY id")):
        latest[incident_id][(source, fingerprint)] = status
    incidents = sa.table("incidents", sa.column("id", sa.Integer), sa.column("signal_counts", sa.JSON))
    for incident_id, statuses in latest.items():
        counts: dict[str, dict[str, int]] = {"firing": {}, "resolved": {}}
        for (source, _), status in statuses.items():
            counts[status][source] = counts[status].get(source, 0) + 1
        conn.execute(incidents.update().where(incidents.c.id == incident_id).values(signal_counts=counts))


def downgrade():
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("signal_counts")
