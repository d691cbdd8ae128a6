"""The failed host's server rows: saved per server with the step that changed them, read with
the incident's snapshot (decide() needs them) and shown with the incident."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from bridge import incidents as sm, servers as sv
from bridge.servers import ServerAction
from bridge.store.tables import server_actions, signals

_FIELDS = tuple(f.name for f in fields(ServerAction))
# the states whose decisions read the rows (and the holds that may resume into them)
READ_IN = frozenset({sm.SERVERS, sm.OUT_OF_SERVICE, sm.RETURNING, sm.HELD, sm.FAILED, sm.CLOSING})


def save(conn, incident_id: int, rows: Iterable[ServerAction], now: datetime) -> None:
    """Insert or update each row (one per server per incident), in the caller's transaction."""
    values = [{"incident_id": incident_id, "updated_at": now, **{f: getattr(r, f) for f in _FIELDS},
               "detail": dict(r.detail), "name": r.name[:255]} for r in rows]
    if not values:
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(server_actions)
    changed = {c: stmt.excluded[c] for c in (*_FIELDS, "updated_at") if c != "server_id"}
    conn.execute(stmt.on_conflict_do_update(index_elements=[server_actions.c.incident_id,
                                                            server_actions.c.server_id], set_=changed), values)


def rules_of(store, incident, policy: sv.ServersPolicy) -> tuple[str, ...]:
    """The rules that mapped the incident's alerts, for servers.groups by rule: read once, when its
    servers are about to be listed (nova_down), and only if a group names a rule."""
    if incident.state != sm.NOVA_DOWN or not any(g.rule for g in policy.groups):
        return ()
    with store.reader.connect() as conn:
        return tuple(conn.execute(sa.select(signals.c.rule).distinct().where(
            signals.c.incident_id == incident.id, signals.c.rule.is_not(None)).order_by(signals.c.rule)).scalars())


def load(conn, incident_id: int, state: str) -> tuple[ServerAction, ...]:
    """The incident's rows in plan order, if its state needs them."""
    if state not in READ_IN:
        return ()
    rows = conn.execute(sa.select(server_actions).where(server_actions.c.incident_id == incident_id)
                        .order_by(server_actions.c.priority.desc(), server_actions.c.name, server_actions.c.server_id))
    return tuple(ServerAction(**{f: getattr(r, f) for f in _FIELDS}) for r in rows)


def shown(conn, incident_id: int) -> list[dict]:
    """The rows as GET /v1/incidents/{id} shows them."""
    rows = conn.execute(sa.select(server_actions).where(server_actions.c.incident_id == incident_id)
                        .order_by(server_actions.c.id))
    return [{k: v for k, v in r._mapping.items() if k != "incident_id"} for r in rows]


def counts(conn) -> dict[tuple[str, str], int]:
    """Rows of open incidents by action and status (for /metrics)."""
    from bridge.store.tables import incidents

    rows = conn.execute(sa.select(server_actions.c.action, server_actions.c.status, sa.func.count())
                        .join(incidents, incidents.c.id == server_actions.c.incident_id)
                        .where(incidents.c.closed_at.is_(None))
                        .group_by(server_actions.c.action, server_actions.c.status))
    return {(a, s): n for a, s, n in rows}
