"""The schema, defined once: every table and index as the migrations leave the database.

tests/test_schema.py migrates an empty database (SQLite and PostgreSQL) and compares it with
this metadata; a migration that forgets something here, or the reverse, fails that test.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect):
        return None if value is None else value.replace(tzinfo=timezone.utc)


metadata = sa.MetaData()

# 0001 made these varchar(n); 0002 made them text on PostgreSQL (SQLite ignores n anyway)
def Name(length: int = 255):  # noqa: N802 - a column type
    return sa.String(length).with_variant(sa.Text(), "postgresql")


signals = sa.Table(
    "signals", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("dedup_key", Name(512), nullable=False, unique=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("fingerprint", Name(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("annotations", sa.JSON, nullable=False),
    sa.Column("starts_at", UTCDateTime),
    sa.Column("ends_at", UTCDateTime),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
    sa.Column("repeats", sa.Integer, nullable=False, server_default="0"),
    sa.Column("raw", sa.JSON, nullable=False),
    sa.Column("rule", Name()),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("candidate_host", Name()),
    sa.Column("host", Name()),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("processed_at", UTCDateTime),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id")),
)
sa.Index("signals_unprocessed", signals.c.processed_at, signals.c.id)
sa.Index("signals_by_incident", signals.c.incident_id)
sa.Index("signals_by_fingerprint", signals.c.source, signals.c.fingerprint)
sa.Index("signals_by_kind", signals.c.kind, signals.c.id)  # the few upstream alerts, for the fleet view

incidents = sa.Table(
    "incidents", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("host", Name(), nullable=False),
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
    # the evidence accepted as this incident's fencing proof (bound to this incident)
    sa.Column("proof_id", sa.Integer),
    # its alerts, each counted once by its latest status, per source: {"firing": {source: n},
    # "resolved": {...}}; kept by intake as signals are taken in (NULL: none yet)
    sa.Column("signal_counts", sa.JSON),
    # which of the host's fencing methods (index) and which attempt of it, both from 0
    sa.Column("fence_method", sa.Integer, nullable=False, server_default="0"),
    sa.Column("fence_attempt", sa.Integer, nullable=False, server_default="0"),
    # the end of the wait for Nova to take a returned host back (then held)
    sa.Column("return_deadline", UTCDateTime),
)
# one open incident per host, enforced by the database itself
sa.Index("one_open_incident_per_host", incidents.c.host, unique=True,
         sqlite_where=sa.text("closed_at IS NULL"), postgresql_where=sa.text("closed_at IS NULL"))
sa.Index("incidents_due", incidents.c.closed_at, incidents.c.due_at)

timeline = sa.Table(
    "timeline", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("from_state", sa.String(32)),
    sa.Column("to_state", sa.String(32), nullable=False),
    sa.Column("cause", sa.Text, nullable=False),
    sa.Column("actor", Name(), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
)
sa.Index("timeline_by_incident", timeline.c.incident_id, timeline.c.id)
sa.Index("timeline_by_state", timeline.c.to_state, timeline.c.at)  # fencing starts within the rate window

evidence = sa.Table(
    "evidence", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("host", Name(), nullable=False),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id")),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("actor", Name(), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
)
sa.Index("evidence_by_host", evidence.c.host, evidence.c.incident_id)
sa.Index("evidence_by_incident", evidence.c.incident_id)

compute_hosts = sa.Table(
    "compute_hosts", metadata,
    sa.Column("host", sa.String(255), primary_key=True),
    sa.Column("service_id", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16)),
    sa.Column("status", sa.String(16)),
    sa.Column("forced_down", sa.Boolean),
    sa.Column("zone", sa.String(255)),
    sa.Column("refreshed_at", UTCDateTime, nullable=False),
    sa.Column("disabled_reason", sa.Text),  # who disabled it, if someone did
    sa.Column("updated_at", UTCDateTime),  # the service's last heartbeat, as Nova saw it
    sa.Column("aggregate", sa.String(255)),  # its failure-domain aggregate (gates.failure_domain)
)

# a person's approval of one gate for one incident (bridge/gates.py APPROVABLE)
approvals = sa.Table(
    "approvals", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("gate", sa.String(64), nullable=False),
    sa.Column("actor", Name(), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)
sa.Index("approvals_by_incident", approvals.c.incident_id, approvals.c.gate)

# the last time a gate saw something, shared by every process and kept over restarts
# (name "storm": the fleet was over a mass limit, for the storm cooldown)
gate_marks = sa.Table(
    "gate_marks", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
)

# the global pause, as people set and lifted it; the latest row is in force
pauses = sa.Table(
    "pauses", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("actor", Name(), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

# the failed host's servers: one row per server per incident (bridge.servers.ServerAction)
server_actions = sa.Table(
    "server_actions", metadata,
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
sa.Index("server_actions_by_incident", server_actions.c.incident_id, server_actions.c.server_id, unique=True)
