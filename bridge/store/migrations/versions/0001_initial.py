"""Initial schema: signals, incidents, timeline, evidence, compute host inventory.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

from bridge.store.tables import UTCDateTime

revision = "0001"
down_revision = None


def upgrade():
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("opened_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("closed_at", UTCDateTime),
        sa.Column("due_at", UTCDateTime),
        sa.Column("fence_deadline", UTCDateTime),
        sa.Column("resume_state", sa.String(32)),
        sa.Column("last_error", sa.Text),
        sa.Column("lease_owner", sa.String(255)),
        sa.Column("lease_expires", UTCDateTime),
        sa.Column("epoch", sa.Integer, nullable=False, server_default="0"),
        sa.Column("nudges", sa.Integer, nullable=False, server_default="0"),
    )
    # one open incident per host, enforced by the database itself
    op.create_index(
        "one_open_incident_per_host", "incidents", ["host"], unique=True,
        sqlite_where=sa.text("closed_at IS NULL"), postgresql_where=sa.text("closed_at IS NULL"),
    )
    op.create_index("incidents_due", "incidents", ["closed_at", "due_at"])
    op.create_table(
        "signals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dedup_key", sa.String(512), nullable=False, unique=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("annotations", sa.JSON, nullable=False),
        sa.Column("starts_at", UTCDateTime),
        sa.Column("ends_at", UTCDateTime),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("last_seen_at", UTCDateTime, nullable=False),
        sa.Column("repeats", sa.Integer, nullable=False, server_default="0"),
        sa.Column("raw", sa.JSON, nullable=False),
        sa.Column("rule", sa.String(255)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("candidate_host", sa.String(255)),
        sa.Column("host", sa.String(255)),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("processed_at", UTCDateTime),
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id")),
    )
    op.create_index("signals_unprocessed", "signals", ["processed_at", "id"])
    op.create_index("signals_by_incident", "signals", ["incident_id"])
    op.create_index("signals_by_fingerprint", "signals", ["source", "fingerprint"])
    op.create_table(
        "timeline",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("from_state", sa.String(32)),
        sa.Column("to_state", sa.String(32), nullable=False),
        sa.Column("cause", sa.Text, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("timeline_by_incident", "timeline", ["incident_id", "id"])
    op.create_table(
        "evidence",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id")),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("evidence_by_host", "evidence", ["host", "incident_id"])
    op.create_table(
        "compute_hosts",
        sa.Column("host", sa.String(255), primary_key=True),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16)),
        sa.Column("status", sa.String(16)),
        sa.Column("forced_down", sa.Boolean),
        sa.Column("zone", sa.String(255)),
        sa.Column("refreshed_at", UTCDateTime, nullable=False),
    )


def downgrade():
    for table in ("compute_hosts", "evidence", "timeline", "signals", "incidents"):
        op.drop_table(table)
