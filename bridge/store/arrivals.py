"""Alerts arriving for an open incident, aggregated on its timeline.

One body of 3,000 alerts for a host would otherwise add 3,000 timeline rows to its incident.
The first arrival of a burst writes its own row ("alert joined: ..."); each later one, while
that row is still the incident's latest, in the same state and younger than BURST, updates it
instead: "N alerts joined (alertmanager 2999, zabbix 1); latest: ...", with the count, the
count by source, the last signal and its time in the row's detail. Every signal stays linked
to its incident (signals.incident_id) and is paged on its own.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from bridge.store.database import lock
from bridge.store.tables import timeline

# how long one row gathers arrivals; anything else on the timeline ends the burst sooner
BURST = timedelta(minutes=10)

JOINED, ATTACHED, RESOLVED = "joined", "attached", "resolved"


def _said(sig) -> str:
    return f"{sig.source} {sig.fingerprint} ({sig.rule})"


def extend(conn, incident_id: int, state: str, now: datetime, verb: str, sig) -> dict | None:
    """Count signal `sig` into the incident's latest row if that row is this burst's, and
    return None; else return the detail for the new row the caller writes."""
    lock(conn, f"timeline:{incident_id}")  # PostgreSQL: two intakes must not extend one row at once
    last = conn.execute(sa.select(timeline).where(timeline.c.incident_id == incident_id)
                        .order_by(timeline.c.id.desc()).limit(1)).first()
    first = {"signal_id": sig.id, "burst": verb, "count": 1, "sources": {sig.source: 1},
             "last_signal_id": sig.id, "last_at": now.isoformat()}
    if (last is None or last.detail.get("burst") != verb or last.from_state != state
            or last.to_state != state or now - last.at >= BURST):
        return first
    detail = dict(last.detail)
    detail["count"] += 1
    detail["sources"] = {**detail["sources"], sig.source: detail["sources"].get(sig.source, 0) + 1}
    detail.update(last_signal_id=sig.id, last_at=now.isoformat())
    sources = ", ".join(f"{source} {n}" for source, n in sorted(detail["sources"].items()))
    cause = f"{detail['count']} alerts {verb} ({sources}); latest: {_said(sig)}"
    conn.execute(timeline.update().where(timeline.c.id == last.id).values(cause=cause, detail=detail))
    return None
