"""Every read and write the bridge makes, each in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from bridge import incidents as sm
from bridge.incidents import Decision, Incident, Proof
from bridge.rules import HOST_DOWN, Mapping
from bridge.signals import FIRING, RESOLVED, Signal
from bridge.store.database import lock
from bridge.store.tables import UTCDateTime, compute_hosts, evidence, incidents, signals, timeline

SYSTEM = "bridge"


@dataclass(frozen=True)
class Claim:
    incident: Incident
    epoch: int
    nudges: int
    firing: int
    proof: Proof | None


def _row(row) -> dict[str, Any]:
    return dict(row._mapping)


def _timeline(conn, incident_id: int, now: datetime, from_state: str | None, to_state: str,
              cause: str, actor: str = SYSTEM, detail: dict | None = None) -> None:
    conn.execute(timeline.insert().values(
        incident_id=incident_id, at=now, from_state=from_state, to_state=to_state,
        cause=cause, actor=actor, detail=detail or {}))


class Store:
    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self._insert = (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)

    # ---- signals -------------------------------------------------------------------

    def add_signals(self, items: Iterable[tuple[Signal, Mapping]], now: datetime) -> list[dict]:
        """Store signals durably; a signal seen before only bumps its repeat count."""
        items = list(items)
        out: list[dict] = [{}] * len(items)
        # rows locked in one global order: two bodies sharing alerts cannot deadlock
        order = sorted(range(len(items)), key=lambda i: items[i][0].dedup_key)
        with self.engine.begin() as conn:
            for i in order:
                signal, mapping = items[i]
                stmt = self._insert(signals).values(
                    dedup_key=signal.dedup_key, source=signal.source, fingerprint=signal.fingerprint,
                    status=signal.status, labels=signal.labels, annotations=signal.annotations,
                    starts_at=signal.starts_at, ends_at=signal.ends_at, received_at=now, last_seen_at=now,
                    repeats=0, raw=signal.raw, rule=mapping.rule, kind=mapping.kind,
                    candidate_host=mapping.candidate, note=mapping.note,
                )
                stmt = stmt.on_conflict_do_update(
                    index_elements=[signals.c.dedup_key],
                    set_={"repeats": signals.c.repeats + 1, "last_seen_at": now},
                ).returning(signals.c.id, signals.c.repeats)
                row = conn.execute(stmt).one()
                out[i] = {"id": row.id, "duplicate": row.repeats > 0, "fingerprint": signal.fingerprint,
                          "status": signal.status, "rule": mapping.rule, "kind": mapping.kind,
                          "candidate_host": mapping.candidate, "note": mapping.note}
        return out

    def unprocessed_signals(self, limit: int = 100) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(signals).where(signals.c.processed_at.is_(None))
                                .order_by(signals.c.id).limit(limit))
            return [_row(r) for r in rows]

    def intake(self, signal_id: int, host: str | None, note: str, now: datetime, *,
               dry_run: bool, confirmation_window: float) -> int | None:
        """Attach one stored signal to its host's incident (opening one if needed).

        Returns the incident id it touched, or None. A signal is taken in once: the
        conditional update is the claim, whichever worker gets there first.
        """
        with self.engine.begin() as conn:
            taken = conn.execute(signals.update()
                                 .where(signals.c.id == signal_id, signals.c.processed_at.is_(None))
                                 .values(processed_at=now, host=host, note=note))
            if taken.rowcount != 1:
                return None
            sig = conn.execute(sa.select(signals).where(signals.c.id == signal_id)).one()
            if sig.kind != HOST_DOWN:
                return None
            if sig.status == RESOLVED:
                return self._intake_resolved(conn, sig, now)
            if host is None:
                return None
            # another worker may be opening this host's incident right now (or storing a
            # confirmation for it): wait for it, then join what it committed
            lock(conn, f"host:{host}")
            open_incident = conn.execute(sa.select(incidents).where(
                incidents.c.host == host, incidents.c.closed_at.is_(None))).first()
            if open_incident is not None:
                conn.execute(signals.update().where(signals.c.id == signal_id)
                             .values(incident_id=open_incident.id))
                self._nudge(conn, open_incident.id, now)
                _timeline(conn, open_incident.id, now, open_incident.state, open_incident.state,
                          f"alert joined: {sig.source} {sig.fingerprint} ({sig.rule})",
                          detail={"signal_id": signal_id})
                return open_incident.id
            incident_id = conn.execute(incidents.insert().values(
                host=host, state=sm.SUSPECTED, dry_run=dry_run, opened_at=now, updated_at=now,
                due_at=now, epoch=0, nudges=0)).inserted_primary_key[0]
            conn.execute(signals.update().where(signals.c.id == signal_id).values(incident_id=incident_id))
            _timeline(conn, incident_id, now, None, sm.SUSPECTED,
                      f"alert: {sig.source} {sig.fingerprint} ({sig.rule}) says {host} is down",
                      detail={"signal_id": signal_id, "dry_run": dry_run})
            # a confirmation that arrived first (the monitor fenced before alerting) counts
            early = conn.execute(evidence.update().where(
                evidence.c.host == host, evidence.c.incident_id.is_(None), evidence.c.expires_at > now,
            ).values(incident_id=incident_id).returning(evidence.c.id, evidence.c.actor))
            for ev in early:
                _timeline(conn, incident_id, now, sm.SUSPECTED, sm.SUSPECTED,
                          f"earlier fencing confirmation by {ev.actor} counts", detail={"evidence_id": ev.id})
            return incident_id

    def _intake_resolved(self, conn, sig, now: datetime) -> int | None:
        firing = conn.execute(sa.select(signals.c.incident_id).where(
            signals.c.source == sig.source, signals.c.fingerprint == sig.fingerprint,
            signals.c.status == FIRING, signals.c.incident_id.is_not(None),
        ).order_by(signals.c.id.desc())).first()
        if firing is None:
            return None
        inc = conn.execute(sa.select(incidents).where(incidents.c.id == firing.incident_id)).one()
        conn.execute(signals.update().where(signals.c.id == sig.id).values(incident_id=inc.id))
        if inc.closed_at is None:
            self._nudge(conn, inc.id, now)
        _timeline(conn, inc.id, now, inc.state, inc.state,
                  f"alert resolved: {sig.source} {sig.fingerprint}", detail={"signal_id": sig.id})
        return inc.id

    def list_signals(self, *, unmapped: bool = False, limit: int = 100) -> list[dict]:
        query = sa.select(signals).order_by(signals.c.id.desc()).limit(limit)
        if unmapped:
            query = query.where(signals.c.processed_at.is_not(None), signals.c.kind == HOST_DOWN,
                                signals.c.host.is_(None))
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    # ---- inventory -------------------------------------------------------------------

    def replace_inventory(self, services: list[dict], now: datetime) -> None:
        with self.engine.begin() as conn:
            lock(conn, "inventory")  # another process refreshing at once would insert the same hosts
            conn.execute(compute_hosts.delete())
            if services:
                conn.execute(compute_hosts.insert(), [{**s, "refreshed_at": now} for s in services])

    def inventory(self) -> tuple[list[str], datetime | None]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(compute_hosts.c.host, compute_hosts.c.refreshed_at)).all()
        return [r.host for r in rows], (max(r.refreshed_at for r in rows) if rows else None)

    # ---- engine: claim, snapshot, commit ---------------------------------------------

    def next_due(self, now: datetime) -> datetime | None:
        """When this worker may next find work: a leased incident is not due before its lease ends."""
        held = sa.and_(incidents.c.lease_owner.is_not(None), incidents.c.lease_expires > now)
        when = sa.case((held, incidents.c.lease_expires), else_=incidents.c.due_at)
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.min(sa.type_coerce(when, UTCDateTime))).where(
                incidents.c.closed_at.is_(None), incidents.c.due_at.is_not(None))).scalar()

    def due_incidents(self, now: datetime, limit: int = 20) -> list[int]:
        free = sa.or_(incidents.c.lease_owner.is_(None), incidents.c.lease_expires < now)
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(incidents.c.id).where(
                incidents.c.closed_at.is_(None), incidents.c.due_at <= now, free,
            ).order_by(incidents.c.due_at).limit(limit)).scalars())

    def claim(self, incident_id: int, owner: str, now: datetime, lease_seconds: float) -> Claim | None:
        """Take the incident's lease; a new epoch makes any older holder's commit fail."""
        free = sa.or_(incidents.c.lease_owner.is_(None), incidents.c.lease_expires < now)
        with self.engine.begin() as conn:
            row = conn.execute(incidents.update().where(
                incidents.c.id == incident_id, incidents.c.closed_at.is_(None), incidents.c.due_at <= now, free,
            ).values(lease_owner=owner, lease_expires=now + timedelta(seconds=lease_seconds),
                     epoch=incidents.c.epoch + 1).returning(*incidents.c)).first()
            if row is None:
                return None
            return Claim(
                incident=Incident(id=row.id, host=row.host, state=row.state, dry_run=row.dry_run,
                                  fence_deadline=row.fence_deadline),
                epoch=row.epoch, nudges=row.nudges,
                firing=self._firing(conn, incident_id), proof=self._proof(conn, incident_id),
            )

    @staticmethod
    def _firing(conn, incident_id: int) -> int:
        latest: dict[tuple[str, str], str] = {}
        for sig in conn.execute(sa.select(signals.c.source, signals.c.fingerprint, signals.c.status)
                                .where(signals.c.incident_id == incident_id).order_by(signals.c.id)):
            latest[(sig.source, sig.fingerprint)] = sig.status
        return sum(status == FIRING for status in latest.values())

    @staticmethod
    def _proof(conn, incident_id: int) -> Proof | None:
        ev = conn.execute(sa.select(evidence).where(evidence.c.incident_id == incident_id)
                          .order_by(evidence.c.id)).first()
        return None if ev is None else Proof(ev.id, ev.kind, ev.actor, ev.reason, ev.at)

    def commit(self, claim: Claim, owner: str, decision: Decision, now: datetime,
               notes: list[tuple[str, dict]] = ()) -> bool:
        """Record a step's outcome, if this worker still holds the lease."""
        inc = claim.incident
        values: dict[str, Any] = {
            "lease_owner": None, "lease_expires": None, "updated_at": now,
            # an event that came in during the step means: look again now
            "due_at": sa.case((incidents.c.nudges != claim.nudges, sa.literal(now, UTCDateTime)),
                              else_=sa.literal(decision.due_at, UTCDateTime)),
        }
        if decision.to_state is not None:
            values["state"] = decision.to_state
            if decision.to_state in sm.TERMINAL:
                values["closed_at"] = now
            if decision.to_state in sm.WAITING_FOR_PERSON:
                values["resume_state"] = inc.state
                values["last_error"] = decision.cause
            if decision.fence_deadline is not None:
                values["fence_deadline"] = decision.fence_deadline
        with self.engine.begin() as conn:
            done = conn.execute(incidents.update().where(
                incidents.c.id == inc.id, incidents.c.epoch == claim.epoch, incidents.c.lease_owner == owner,
            ).values(**values))
            if done.rowcount != 1:
                return False  # the lease was lost: another worker owns this incident now
            for cause, detail in notes:
                _timeline(conn, inc.id, now, inc.state, inc.state, cause, detail=detail)
            if decision.to_state is not None:
                _timeline(conn, inc.id, now, inc.state, decision.to_state, decision.cause, detail=decision.detail)
        return True

    def _nudge(self, conn, incident_id: int, now: datetime) -> None:
        conn.execute(incidents.update().where(incidents.c.id == incident_id)
                     .values(due_at=now, nudges=incidents.c.nudges + 1))

    # ---- operators -------------------------------------------------------------------

    def open_incident_for(self, host: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(incidents).where(
                incidents.c.host == host, incidents.c.closed_at.is_(None))).first()
        return None if row is None else _row(row)

    def add_confirmation(self, host: str, actor: str, reason: str, now: datetime, window: float,
                         detail: dict) -> dict:
        """Record manual fencing proof; it belongs to the host's open incident that has none yet,
        or waits up to `window` seconds for the incident to open."""
        with self.engine.begin() as conn:
            lock(conn, f"host:{host}")  # else an intake opening the incident now would not see it
            inc = conn.execute(sa.select(incidents).where(
                incidents.c.host == host, incidents.c.closed_at.is_(None))).first()
            target = None
            if inc is not None and self._proof(conn, inc.id) is None:
                target = inc.id
            evidence_id = conn.execute(evidence.insert().values(
                host=host, incident_id=target, kind="manual", actor=actor, reason=reason, at=now,
                expires_at=now + timedelta(seconds=window), detail=detail)).inserted_primary_key[0]
            if target is not None:
                self._nudge(conn, target, now)
                _timeline(conn, target, now, inc.state, inc.state, f"fencing confirmed by {actor}: {reason}",
                          actor=actor, detail={"evidence_id": evidence_id})
        return {"evidence_id": evidence_id, "incident_id": target, "host": host, "actor": actor,
                "reason": reason, "at": now, "expires_at": None if target else now + timedelta(seconds=window)}

    def operator_action(self, incident_id: int, action: str, actor: str, reason: str, now: datetime) -> dict:
        """retry: a held or failed incident goes back to the step it stopped at.
        close: the incident ends here; Nova is not touched."""
        with self.engine.begin() as conn:
            # FOR UPDATE: two operators at once on PostgreSQL would both pass the checks below
            inc = conn.execute(sa.select(incidents).where(incidents.c.id == incident_id).with_for_update()).first()
            if inc is None:
                raise LookupError(f"no incident {incident_id}")
            if inc.lease_owner is not None and inc.lease_expires > now:
                # its outcome (a Nova call, perhaps) is about to be recorded; act on what it leads to
                raise ValueError(f"incident {incident_id} is in the middle of a step; try again in a moment")
            if action == "retry":
                if inc.state not in sm.WAITING_FOR_PERSON:
                    raise ValueError(f"incident {incident_id} is {inc.state}; only held or failed ones can be retried")
                to_state = inc.resume_state or sm.SUSPECTED
                if to_state == sm.FENCING:  # a fresh wait, not an instant second timeout
                    to_state = sm.SUSPECTED
                values = {"state": to_state, "due_at": now, "last_error": None, "resume_state": None}
            else:
                if inc.closed_at is not None:
                    raise ValueError(f"incident {incident_id} is already {inc.state}")
                to_state = sm.CLOSED
                values = {"state": to_state, "closed_at": now, "due_at": None}
            conn.execute(incidents.update().where(incidents.c.id == incident_id)
                         .values(updated_at=now, nudges=incidents.c.nudges + 1, epoch=incidents.c.epoch + 1,
                                 **values))
            _timeline(conn, incident_id, now, inc.state, to_state, f"{action} by {actor}: {reason}", actor=actor)
        return self.get_incident(incident_id)

    # ---- read side -------------------------------------------------------------------

    def list_incidents(self, *, state: str | None = None, host: str | None = None,
                       open_only: bool = False, limit: int = 100) -> list[dict]:
        query = sa.select(incidents).order_by(incidents.c.id.desc()).limit(limit)
        if state:
            query = query.where(incidents.c.state == state)
        if host:
            query = query.where(incidents.c.host == host)
        if open_only:
            query = query.where(incidents.c.closed_at.is_(None))
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def get_incident(self, incident_id: int) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)).first()
            if row is None:
                return None
            out = _row(row)
            out["timeline"] = [_row(r) for r in conn.execute(
                sa.select(timeline).where(timeline.c.incident_id == incident_id).order_by(timeline.c.id))]
            out["evidence"] = [_row(r) for r in conn.execute(
                sa.select(evidence).where(evidence.c.incident_id == incident_id).order_by(evidence.c.id))]
            out["signals"] = [_row(r) for r in conn.execute(
                sa.select(signals.c.id, signals.c.source, signals.c.fingerprint, signals.c.status,
                          signals.c.rule, signals.c.received_at, signals.c.repeats)
                .where(signals.c.incident_id == incident_id).order_by(signals.c.id))]
        return out

    def counts(self) -> dict[str, dict]:
        with self.engine.connect() as conn:
            by_state = dict(conn.execute(sa.select(incidents.c.state, sa.func.count())
                                         .group_by(incidents.c.state)).all())
            by_source = dict(conn.execute(sa.select(signals.c.source, sa.func.count())
                                          .group_by(signals.c.source)).all())
        return {"incidents": by_state, "signals": by_source}
