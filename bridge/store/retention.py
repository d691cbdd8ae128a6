"""Retention: the signal log and ended incidents, deleted when old, in bounded batches.

What goes (config `retention:`):
- signals not seen for `signals_days` (a sender's repeat counts as seen), once taken in, that
  belong to no incident or to an ended one;
- incidents ended more than `closed_incidents_days` ago, with their timeline, evidence and signals;
- confirmations that never counted for an incident, `closed_incidents_days` after their window.
What never goes: anything of an open incident (signals, timeline, evidence), a signal not yet
taken in, a confirmation still inside its window, and the compute host inventory.

Each batch is one short transaction of at most `batch` rows per table, under the "retention"
lock: two workers pruning at once take turns (PostgreSQL; SQLite writes one at a time anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from bridge.store.database import WriteLock, lock, readers, writing
from bridge.store.tables import approvals, evidence, incidents, server_actions, signals, timeline

KINDS = ("signals", "incidents", "timeline", "evidence", "server_actions")
# what belongs to an incident and goes with it
_OF_INCIDENT = (("signals", signals), ("timeline", timeline), ("evidence", evidence),
                ("server_actions", server_actions))


@dataclass(frozen=True)
class Retention:
    signals_days: float
    closed_incidents_days: float
    batch: int = 1000

    @classmethod
    def from_config(cls, config) -> Retention:
        r = config["retention"]
        return cls(r["signals_days"], r["closed_incidents_days"], r["batch"])


class _Due:
    """The predicates of what is due for deletion at `now`."""

    def __init__(self, policy: Retention, now: datetime):
        closed_before = now - timedelta(days=policy.closed_incidents_days)
        self.incidents = incidents.c.closed_at < closed_before
        ended = sa.select(incidents.c.id).where(incidents.c.closed_at.is_not(None))
        self.signals = sa.and_(
            signals.c.processed_at.is_not(None),
            signals.c.last_seen_at < now - timedelta(days=policy.signals_days),
            sa.or_(signals.c.incident_id.is_(None), signals.c.incident_id.in_(ended)))
        self.confirmations = sa.and_(evidence.c.incident_id.is_(None), evidence.c.expires_at < closed_before)

    def of_incidents(self, table):
        return table.c.incident_id.in_(sa.select(incidents.c.id).where(self.incidents))


def _count(conn, table, where) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar()


def _delete_batch(engine: sa.Engine, write_lock: WriteLock, table, where, batch: int) -> int:
    with writing(engine, write_lock) as conn:
        lock(conn, "retention")
        ids = sa.select(table.c.id).where(where).order_by(table.c.id).limit(batch)
        return conn.execute(table.delete().where(table.c.id.in_(ids.scalar_subquery()))).rowcount


def _delete_all(engine: sa.Engine, write_lock: WriteLock, table, where, batch: int) -> int:
    total = 0
    while (n := _delete_batch(engine, write_lock, table, where, batch)) > 0:
        total += n
        if n < batch:
            break
    return total


def prune(engine: sa.Engine, policy: Retention, now: datetime, *, dry_run: bool = False,
          write_lock: WriteLock | None = None) -> dict[str, int]:
    """Delete what is due at `now` (or, dry-run, count it); how many rows of each kind. On
    SQLite each batch waits its turn with every other writer on `write_lock` (one kept by the
    caller that prunes again and again; each WriteLock holds a file open)."""
    due = _Due(policy, now)
    if dry_run:
        with readers(engine).connect() as conn:
            return {
                "signals": _count(conn, signals, sa.or_(due.signals, due.of_incidents(signals))),
                "incidents": _count(conn, incidents, due.incidents),
                "timeline": _count(conn, timeline, due.of_incidents(timeline)),
                "evidence": _count(conn, evidence, sa.or_(due.confirmations, due.of_incidents(evidence))),
                "server_actions": _count(conn, server_actions, due.of_incidents(server_actions)),
            }
    write_lock = write_lock or WriteLock(engine)
    done = dict.fromkeys(KINDS, 0)
    done["signals"] = _delete_all(engine, write_lock, signals, due.signals, policy.batch)
    done["evidence"] = _delete_all(engine, write_lock, evidence, due.confirmations, policy.batch)
    for kind, table in _OF_INCIDENT:
        done[kind] += _delete_all(engine, write_lock, table, due.of_incidents(table), policy.batch)
    while True:
        with writing(engine, write_lock) as conn:
            lock(conn, "retention")
            ids = list(conn.execute(sa.select(incidents.c.id).where(due.incidents)
                                    .order_by(incidents.c.id).limit(policy.batch)).scalars())
            # a resolve taken in since may have linked one more signal to an ended incident
            for kind, table in _OF_INCIDENT:
                done[kind] += conn.execute(table.delete().where(table.c.incident_id.in_(ids))).rowcount
            conn.execute(approvals.delete().where(approvals.c.incident_id.in_(ids)))  # few: not counted
            done["incidents"] += conn.execute(incidents.delete().where(incidents.c.id.in_(ids))).rowcount
        if len(ids) < policy.batch:
            return done
