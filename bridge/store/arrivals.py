"""Alerts arriving for an incident, aggregated on its timeline.

One body of 3,000 alerts for a host would otherwise add 3,000 timeline rows to its incident.
The first arrival of a burst writes its own row ("alert joined: ..."); the later ones, while
that row is still the incident's latest, in the same state and younger than BURST, update it
instead: "N alerts joined (alertmanager 2999, zabbix 1); latest: ...", with the count, the
count by source, the first and last signal and the last time in the row's detail. Every
signal stays linked to its incident (signals.incident_id) and is paged on its own.

One intake transaction counts its arrivals in memory and writes each burst once (flush): the
incidents' latest rows read in one query, the rows updated and added in one statement each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

import sqlalchemy as sa

from bridge.store.database import lock
from bridge.store.tables import timeline

# how long one row gathers arrivals; anything else on the timeline ends the burst sooner
BURST = timedelta(minutes=10)

JOINED, ATTACHED, RESOLVED = "joined", "attached", "resolved"

# each incident's latest row (by the (incident_id, id) index), and a burst's row rewritten: built once
_LATEST = sa.select(timeline).where(timeline.c.id.in_(
    sa.select(sa.func.max(timeline.c.id))
    .where(timeline.c.incident_id.in_(sa.bindparam("incident_ids", expanding=True)))
    .group_by(timeline.c.incident_id)))
_REWRITE = timeline.update().where(timeline.c.id == sa.bindparam("row_id")).values(
    cause=sa.bindparam("to_cause"), detail=sa.bindparam("to_detail", type_=timeline.c.detail.type))


@dataclass
class _Burst:
    verb: str
    state: str
    at: datetime  # of its first arrival
    first_cause: str  # its text while it holds one arrival
    count: int = 0
    sources: dict[str, int] = field(default_factory=dict)
    first_signal_id: int | None = None
    last_signal_id: int | None = None
    latest: str = ""

    def add(self, sig) -> None:
        self.count += 1
        self.sources[sig.source] = self.sources.get(sig.source, 0) + 1
        self.first_signal_id = self.first_signal_id or sig.id
        self.last_signal_id = sig.id
        self.latest = f"{sig.source} {sig.fingerprint} ({sig.rule})"

    def continues(self, row) -> bool:
        """Whether this burst goes on the incident's latest timeline row."""
        detail = row.detail
        return (detail.get("burst") == self.verb and row.from_state == row.to_state == self.state
                and self.at - row.at < BURST)

    def merge(self, row) -> None:
        """Count the arrivals the row holds in (it came first)."""
        self.at, self.first_cause, self.count = row.at, row.cause, self.count + row.detail["count"]
        for source, n in row.detail["sources"].items():
            self.sources[source] = self.sources.get(source, 0) + n
        self.first_signal_id = row.detail["signal_id"]

    def row(self, now: datetime) -> tuple[str, dict]:
        """Its timeline row's cause and detail."""
        detail = {"signal_id": self.first_signal_id, "burst": self.verb, "count": self.count,
                  "sources": self.sources, "last_signal_id": self.last_signal_id, "last_at": now.isoformat()}
        if self.count == 1:
            return self.first_cause, detail
        sources = ", ".join(f"{source} {n}" for source, n in sorted(self.sources.items()))
        return f"{self.count} alerts {self.verb} ({sources}); latest: {self.latest}", detail


class Bursts:
    """The arrivals of one intake transaction on `conn`, counted in memory; flush() writes them.
    `row` makes a timeline row's values (queries._timeline_row)."""

    def __init__(self, conn, now: datetime, row: Callable[..., dict]):
        self.conn, self.now, self.row = conn, now, row
        self.by_incident: dict[int, list[_Burst]] = {}

    def note(self, incident_id: int, state: str, verb: str, sig, cause: str) -> None:
        """Signal `sig` arrived for the incident (`cause`: the text of its row, if it starts one)."""
        bursts = self.by_incident.setdefault(incident_id, [])
        if not bursts or bursts[-1].verb != verb or bursts[-1].state != state:
            bursts.append(_Burst(verb, state, self.now, cause))
        bursts[-1].add(sig)

    def flush(self) -> None:
        """Each burst on its row: the incident's latest, if it continues it, else a new one."""
        if not self.by_incident:
            return
        for incident_id in sorted(self.by_incident):  # one lock order: no deadlock
            lock(self.conn, f"timeline:{incident_id}")  # PostgreSQL: two intakes must not extend one row at once
        latest = {row.incident_id: row for row in self.conn.execute(
            _LATEST, {"incident_ids": sorted(self.by_incident)})}
        rewrites, added = [], []
        for incident_id, bursts in sorted(self.by_incident.items()):
            for n, burst in enumerate(bursts):
                last = latest.get(incident_id)
                if n == 0 and last is not None and burst.continues(last):
                    burst.merge(last)
                    cause, detail = burst.row(self.now)
                    rewrites.append({"row_id": last.id, "to_cause": cause, "to_detail": detail})
                else:
                    cause, detail = burst.row(self.now)
                    added.append(self.row(incident_id, burst.at, burst.state, burst.state, cause, detail=detail))
        if rewrites:
            self.conn.execute(_REWRITE, rewrites)
        if added:
            self.conn.execute(timeline.insert(), added)
        self.by_incident.clear()
