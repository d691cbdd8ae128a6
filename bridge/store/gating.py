"""What the safety gates read from the database: the fleet's counts, one host's view, and the
approvals people gave. Reads only (approvals are written with the operator's action)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Mapping

import sqlalchemy as sa

from bridge import incidents as sm
from bridge.gates import HostView, Limits
from bridge.rules import HOST_DOWN, UPSTREAM_DOWN
from bridge.signals import FIRING
from bridge.store.database import lock
from bridge.store.tables import (
    UTCDateTime, approvals, compute_hosts, gate_marks, incidents, pauses, signals, timeline,
)

_OPEN = incidents.c.closed_at.is_(None)


def _latest(rows) -> dict[tuple[str, str], Any]:
    """Each alert (source, fingerprint) by its latest report; rows ordered by id."""
    return {(r.source, r.fingerprint): r for r in rows}


def _domain_of(labels: list[Mapping[str, str]], domain: Mapping[str, str] | None, service) -> str | None:
    if not domain:
        return None
    if "nova" in domain:  # its zone or its aggregate, as Nova was last read
        return getattr(service, domain["nova"]) if service is not None else None
    return next((lab[domain["label"]] for lab in labels if lab.get(domain["label"])), None)


# One row of single index lookups that changes whenever any process commits something the fleet
# view counts: an intake (incidents opened; upstream and watchdog alerts), a pause, and with a
# rate limit a fencing start. A process reuses its view only while this row stays the same
# (GateInputs.fleet).
_CHANGES = (sa.select(sa.func.max(incidents.c.id)).scalar_subquery(),
            sa.select(sa.func.max(signals.c.processed_at)).scalar_subquery(),
            sa.select(sa.func.max(pauses.c.id)).scalar_subquery())
_VERSION = sa.select(*_CHANGES)
_VERSION_AND_STARTS = sa.select(
    *_CHANGES, sa.select(sa.func.max(timeline.c.at)).where(timeline.c.to_state == sm.FENCING).scalar_subquery())


def fleet_version(conn, limits: Limits) -> tuple:
    return tuple(conn.execute(_VERSION if limits.rate_hosts is None else _VERSION_AND_STARTS).one())


def fleet_counts(conn, now: datetime, limits: Limits, domain: Mapping[str, str] | None,
                 watchdog: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Fleet's fields the database knows (bridge.gates.Fleet), in one read transaction."""
    count = sa.select(sa.func.count())
    hosts = conn.execute(count.select_from(compute_hosts)).scalar()
    out: dict[str, Any] = {"hosts": hosts or None,
                           "down": conn.execute(count.select_from(incidents).where(_OPEN)).scalar(),
                           "paused": paused(conn)}
    if domain and "nova" in domain:
        column = compute_hosts.c[domain["nova"]]  # zone or aggregate
        out["domain_hosts"] = dict(conn.execute(sa.select(column, sa.func.count()).group_by(column)).all())
        out["domain_down"] = dict(conn.execute(
            sa.select(column, sa.func.count()).select_from(
                incidents.join(compute_hosts, compute_hosts.c.host == incidents.c.host))
            .where(_OPEN).group_by(column)).all())
    elif domain:
        value = signals.c.labels[domain["label"]].as_string()
        rows = conn.execute(sa.select(incidents.c.id, value).select_from(
            incidents.join(signals, signals.c.incident_id == incidents.c.id))
            .where(_OPEN, signals.c.kind == HOST_DOWN, value.is_not(None)).distinct()).all()
        out["domain_down"] = dict(Counter(v for v in {i: v for i, v in rows}.values() if v))
    if limits.storm_cooldown is not None:
        out["over_limit_at"] = mark(conn, STORM)
    if limits.rate_hosts is not None:
        out["started"] = fencing_starts(conn, now, limits)
    if limits.burst_count is not None:
        out["opened"] = conn.execute(count.select_from(incidents).where(
            incidents.c.opened_at >= now - timedelta(seconds=limits.burst_window))).scalar()
    if watchdog:
        query = sa.select(sa.type_coerce(sa.func.max(signals.c.last_seen_at), UTCDateTime)).where(
            signals.c.status == FIRING, *(signals.c.labels[k].as_string() == v for k, v in watchdog["match"].items()))
        if watchdog.get("source"):
            query = query.where(signals.c.source == watchdog["source"])
        out["heartbeat_at"] = conn.execute(query).scalar()
    latest = _latest(conn.execute(sa.select(signals.c.source, signals.c.fingerprint, signals.c.status,
                                            signals.c.candidate_host)
                                  .where(signals.c.kind == UPSTREAM_DOWN).order_by(signals.c.id)))
    out["upstream_down"] = frozenset(r.candidate_host for r in latest.values()
                                     if r.status == FIRING and r.candidate_host)
    return out


# a step's reads, built once (a statement built per call costs SQLAlchemy more than running it)
_OPENED_AT = sa.select(incidents.c.opened_at).where(incidents.c.id == sa.bindparam("incident_id"))
_REPORTS = (sa.select(signals.c.source, signals.c.fingerprint, signals.c.status, signals.c.labels)
            .where(signals.c.incident_id == sa.bindparam("incident_id")).order_by(signals.c.id))
_SERVICE = sa.select(compute_hosts).where(compute_hosts.c.host == sa.bindparam("host"))
_CHANGES = sa.select(sa.func.count()).select_from(signals).where(
    signals.c.incident_id.in_(sa.select(incidents.c.id).where(incidents.c.host == sa.bindparam("host"))),
    signals.c.received_at >= sa.bindparam("since", type_=UTCDateTime))
_APPROVED = sa.select(approvals.c.gate).where(approvals.c.incident_id == sa.bindparam("incident_id"))
_STARTS = sa.select(sa.func.count()).select_from(timeline).where(
    timeline.c.to_state == sm.FENCING, timeline.c.from_state != sm.FENCING,
    timeline.c.at >= sa.bindparam("since", type_=UTCDateTime))


def fencing_starts(conn, now: datetime, limits: Limits) -> int:
    """Fencing starts within limits.rate_window (the rate limit's count)."""
    return conn.execute(_STARTS, {"since": now - timedelta(seconds=limits.rate_window)}).scalar()


def host_view(conn, incident_id: int, host: str, now: datetime, limits: Limits,
              domain: Mapping[str, str] | None) -> HostView:
    row = conn.execute(_OPENED_AT, {"incident_id": incident_id}).first()
    reports = _latest(conn.execute(_REPORTS, {"incident_id": incident_id}))
    labels = tuple(r.labels for r in reports.values() if r.status == FIRING)
    service = conn.execute(_SERVICE, {"host": host}).first()
    changes = 0
    if limits.flap_changes is not None:
        changes = conn.execute(_CHANGES, {"host": host,
                                          "since": now - timedelta(seconds=limits.flap_window)}).scalar()
    return HostView(domain=_domain_of(list(labels), domain, service),
                    opened_at=row.opened_at if row else None, labels=labels, changes=changes,
                    service=dict(service._mapping) if service else None,
                    service_read_at=service.refreshed_at if service else None)


def approved(conn, incident_id: int) -> frozenset[str]:
    return frozenset(conn.execute(_APPROVED, {"incident_id": incident_id}).scalars())


def record_approval(conn, incident_id: int, gate: str, actor: str, reason: str, now: datetime) -> None:
    conn.execute(approvals.insert().values(incident_id=incident_id, gate=gate, actor=actor, reason=reason, at=now))


def paused(conn) -> str | None:
    """Why everything new waits (who, when, why), or None while not paused."""
    row = conn.execute(sa.select(pauses).order_by(pauses.c.id.desc()).limit(1)).first()
    return f"paused by {row.actor} at {row.at.isoformat()}: {row.reason}" if row is not None and row.paused else None


def set_paused(conn, on: bool, actor: str, reason: str, now: datetime) -> None:
    conn.execute(pauses.insert().values(paused=on, actor=actor, reason=reason, at=now))


STORM = "storm"  # the fleet was over a mass limit (the storm cooldown counts from the latest)


def mark(conn, name: str) -> datetime | None:
    return conn.execute(sa.select(gate_marks.c.at).where(gate_marks.c.name == name)).scalar()


def set_mark(conn, name: str, at: datetime) -> None:
    """Move the mark to `at`, never back (processes whose clocks differ a little keep the latest)."""
    lock(conn, f"mark:{name}")  # two processes marking at once would both insert
    current = mark(conn, name)
    if current is None:
        conn.execute(gate_marks.insert().values(name=name, at=at))
    elif current < at:
        conn.execute(gate_marks.update().where(gate_marks.c.name == name).values(at=at))


def waiting_on(conn, incident_id: int) -> str | None:
    """The gate the incident's timeline last said it waits on, if that is the latest word on
    why it is where it is (no transition, hold or other wait since)."""
    row = conn.execute(sa.select(timeline.c.from_state, timeline.c.to_state, timeline.c.detail).where(
        timeline.c.incident_id == incident_id,
        sa.or_(timeline.c.from_state.is_(None), timeline.c.from_state != timeline.c.to_state,
               timeline.c.cause.like("gate %"))).order_by(timeline.c.id.desc()).limit(1)).first()
    if row is None or row.from_state != row.to_state or not row.detail.get("waiting"):
        return None
    return row.detail.get("gate")


def note_wait(conn, incident_id: int, state: str, cause: str, detail: Mapping[str, Any], now: datetime) -> bool:
    """A gate makes the incident wait: on its timeline, unless it says so already. Whether written."""
    if waiting_on(conn, incident_id) == detail["gate"]:
        return False
    conn.execute(timeline.insert().values(incident_id=incident_id, at=now, from_state=state, to_state=state,
                                          cause=cause, actor="bridge", detail=dict(detail)))
    return True
