"""The read side: every list bounded, paged by id (keyset), never by offset.

Lists of incidents and signals run newest first and page on `before` (the last id seen);
an incident's timeline, signals and evidence run oldest first and page on `after`. An
incident read alone carries its latest entries and the counts of all of them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from bridge.rules import HOST_DOWN
from bridge.signals import FIRING
from bridge.store import server_actions
from bridge.store.tables import evidence, incidents, signals, timeline

RECENT = 50  # timeline entries and evidence shown with an incident; the rest are paged


def as_dict(row) -> dict[str, Any]:
    return dict(row._mapping)


def _newest_first(query, table, before: int | None, limit: int):
    query = query.order_by(table.c.id.desc()).limit(limit)
    return query if before is None else query.where(table.c.id < before)


def _oldest_first(table, incident_id: int, after: int, limit: int):
    return (sa.select(table).where(table.c.incident_id == incident_id, table.c.id > after)
            .order_by(table.c.id).limit(limit))


# after every fenced and forced_down transition: built once (prepared.py says why)
_FIRST_FIRING = (sa.select(signals.c.starts_at, signals.c.received_at)
                 .where(signals.c.incident_id == sa.bindparam("incident"), signals.c.status == FIRING)
                 .order_by(signals.c.received_at, signals.c.id).limit(1))
_MARKS = (sa.select(timeline.c.to_state, sa.func.max(timeline.c.at))
          .where(timeline.c.incident_id == sa.bindparam("incident"), timeline.c.to_state.in_(("fenced", "forced_down")))
          .group_by(timeline.c.to_state))


class Reads:
    reader: sa.Engine  # transactions that only read (database.readers)

    def list_incidents(self, *, state: str | None = None, host: str | None = None,
                       open_only: bool = False, limit: int = 100, before: int | None = None) -> list[dict]:
        query = _newest_first(sa.select(incidents), incidents, before, limit)
        if state:
            query = query.where(incidents.c.state == state)
        if host:
            query = query.where(incidents.c.host == host)
        if open_only:
            query = query.where(incidents.c.closed_at.is_(None))
        with self.reader.connect() as conn:
            return [as_dict(r) for r in conn.execute(query)]

    def list_signals(self, *, unmapped: bool = False, limit: int = 100, before: int | None = None) -> list[dict]:
        query = _newest_first(sa.select(signals), signals, before, limit)
        if unmapped:
            query = query.where(signals.c.processed_at.is_not(None), signals.c.kind == HOST_DOWN,
                                signals.c.host.is_(None))
        with self.reader.connect() as conn:
            return [as_dict(r) for r in conn.execute(query)]

    def get_incident(self, incident_id: int, recent: int = RECENT) -> dict | None:
        """The incident, its latest `recent` timeline entries and evidence (oldest first), and
        how many of each, and of its signals by source and status, there are in all."""
        with self.reader.connect() as conn:
            row = conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)).first()
            if row is None:
                return None
            out = as_dict(row)
            for name, table in (("timeline", timeline), ("evidence", evidence)):
                latest = conn.execute(sa.select(table).where(table.c.incident_id == incident_id)
                                      .order_by(table.c.id.desc()).limit(recent))
                out[name] = [as_dict(r) for r in reversed(latest.all())]
            by_source: dict[str, dict[str, int]] = {}
            for source, status, n in conn.execute(
                    sa.select(signals.c.source, signals.c.status, sa.func.count())
                    .where(signals.c.incident_id == incident_id).group_by(signals.c.source, signals.c.status)):
                by_source.setdefault(source, {})[status] = n
            out["servers"] = server_actions.shown(conn, incident_id)  # one row per server, never many
            out["counts"] = {
                "timeline": self._count(conn, timeline, incident_id),
                "evidence": self._count(conn, evidence, incident_id),
                "signals": sum(n for statuses in by_source.values() for n in statuses.values()),
                "signals_by_source": by_source,
            }
        return out

    def server_action_counts(self) -> dict[tuple[str, str], int]:
        with self.reader.connect() as conn:
            return server_actions.counts(conn)

    @staticmethod
    def _count(conn, table, incident_id: int) -> int:
        return conn.execute(sa.select(sa.func.count()).select_from(table)
                            .where(table.c.incident_id == incident_id)).scalar()

    def _incident_page(self, table, incident_id: int, after: int, limit: int) -> list[dict] | None:
        """None if there is no such incident."""
        with self.reader.connect() as conn:
            if conn.execute(sa.select(incidents.c.id).where(incidents.c.id == incident_id)).first() is None:
                return None
            return [as_dict(r) for r in conn.execute(_oldest_first(table, incident_id, after, limit))]

    def incident_timeline(self, incident_id: int, *, after: int = 0, limit: int = 100) -> list[dict] | None:
        return self._incident_page(timeline, incident_id, after, limit)

    def incident_evidence(self, incident_id: int, *, after: int = 0, limit: int = 100) -> list[dict] | None:
        return self._incident_page(evidence, incident_id, after, limit)

    def incident_signals(self, incident_id: int, *, after: int = 0, limit: int = 100) -> list[dict] | None:
        return self._incident_page(signals, incident_id, after, limit)

    def milestones(self, incident_id: int) -> dict:
        """For the timeline metrics: the incident's first firing alert (its startsAt, when it
        was stored) and when the incident last became fenced and forced down."""
        with self.reader.connect() as conn:
            first = conn.execute(_FIRST_FIRING, {"incident": incident_id}).first()
            marks = dict(conn.execute(_MARKS, {"incident": incident_id}).all())
        marks = {"fenced_at": marks.get("fenced"), "forced_down_at": marks.get("forced_down")}
        if first is not None:
            marks.update(starts_at=first.starts_at, received_at=first.received_at)
        return marks
