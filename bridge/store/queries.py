"""Every read and write the bridge makes, each in one transaction."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

import sqlalchemy as sa

from bridge import incidents as sm
from bridge.effects import Evidence, Outcome
from bridge.incidents import Decision, Incident, OperatorAction, Policy, Signals
from bridge.rules import HOST_DOWN, POWER_OFF, Mapping
from bridge.signals import FIRING, RESOLVED, Signal
from bridge import servers as sv
from bridge.store import arrivals, gating, prepared, receipts, server_actions
from bridge.store.database import IntakeTurn, WriteLock, lock, readers, writing
from bridge.store.groupcommit import GroupCommit
from bridge.store.reads import Reads, as_dict as _row
from bridge.store.tables import UTCDateTime, compute_hosts, evidence, incidents, signals

SYSTEM = "bridge"


@dataclass(frozen=True)
class Snapshot:
    """One incident and everything decide() needs about it, read in one transaction."""

    incident: Incident
    epoch: int
    nudges: int
    signals: Signals
    evidence: tuple[Evidence, ...]
    proof: Evidence | None
    busy: bool = False  # leased by a worker right now
    servers: tuple[sv.ServerAction, ...] = ()  # the host's server rows (bridge.store.server_actions)


Claim = Snapshot  # what a worker holds while it has the lease


@dataclass(frozen=True)
class FirstStep:
    """What the engine asks of add_confirmation: for an incident in one of `states`, take the
    lease for `owner`, and commit the step `run` settles from the claim without I/O (None: it
    does not; the engine steps it from the claim)."""

    owner: str
    lease_seconds: float
    states: frozenset[str]
    run: Callable[[Snapshot], tuple[Decision, Outcome] | None]


def _incident(row) -> Incident:
    return Incident(id=row.id, host=row.host, state=row.state, dry_run=row.dry_run,
                    fence_deadline=row.fence_deadline, resume_state=row.resume_state, proof_id=row.proof_id,
                    fence_method=row.fence_method, fence_attempt=row.fence_attempt,
                    return_deadline=row.return_deadline)


def _evidence(row) -> Evidence:
    return Evidence(row.id, row.incident_id, row.host, row.kind, row.actor, row.reason, row.at, row.detail)


def _joined_evidence(row) -> Evidence:
    """Evidence from a row of prepared.SNAPSHOT."""
    return Evidence(row.ev_id, row.ev_incident_id, row.ev_host, row.ev_kind, row.ev_actor, row.ev_reason,
                    row.ev_at, row.ev_detail)


def _snapshot(row, bound: tuple[Evidence, ...], now: datetime, servers: tuple[sv.ServerAction, ...]) -> Snapshot:
    """The snapshot of an incident row, the evidence bound to it and its server rows."""
    # kept by intake as signals are taken in: nothing to count here
    counts = row.signal_counts or {}
    firing, resolved = dict(counts.get(FIRING, {})), dict(counts.get(RESOLVED, {}))
    proof = next((ev for ev in bound if ev.id == row.proof_id), None)
    busy = row.lease_owner is not None and row.lease_expires is not None and row.lease_expires > now
    return Snapshot(_incident(row), row.epoch, row.nudges, Signals(firing, resolved), bound, proof, busy, servers)


def _timeline_row(incident_id: int, now: datetime, from_state: str | None, to_state: str,
                  cause: str, actor: str = SYSTEM, detail: dict | None = None) -> dict:
    return {"incident_id": incident_id, "at": now, "from_state": from_state, "to_state": to_state,
            "cause": cause, "actor": actor, "detail": detail or {}}


def _timeline(conn, *args, **kwargs) -> None:
    conn.execute(prepared.ADD_TIMELINE, [_timeline_row(*args, **kwargs)])


def _add_evidence(conn, host: str, incident_id: int | None, kind: str, actor: str, reason: str, now: datetime,
                  window: float, detail: dict) -> tuple[int, datetime | None]:
    """Fencing evidence a person or an alert gave: bound to the host's open incident, or waiting
    `window` seconds for its next one. Returns its id and, when waiting, until when."""
    expires = None if incident_id is not None else now + timedelta(seconds=window)
    evidence_id = conn.execute(prepared.ADD_EVIDENCE, {
        "host": host, "incident_id": incident_id, "kind": kind, "actor": actor, "reason": reason, "at": now,
        "expires_at": expires or now, "detail": detail}).inserted_primary_key[0]
    return evidence_id, expires


def _transition(decision: Decision, now: datetime) -> dict[str, Any]:
    """The incident columns a decision's transition sets (none without one)."""
    if decision.to_state is None:
        return {}
    values: dict[str, Any] = {"state": decision.to_state, "resume_state": decision.resume_state,
                              "last_error": decision.last_error}
    if decision.closes:
        values.update(closed_at=now, due_at=None)
    if decision.fence_deadline is not None:
        values["fence_deadline"] = decision.fence_deadline
    if decision.fence_step is not None:  # the next fencing attempt: its deadline too, None until requested
        values.update(fence_method=decision.fence_step[0], fence_attempt=decision.fence_step[1],
                      fence_deadline=decision.fence_deadline)
    if decision.return_deadline is not None:
        values["return_deadline"] = decision.return_deadline
    return values


def _stored(signal: Signal, mapping: Mapping, now: datetime) -> dict:
    """A signal's row as the webhook stores it (receipts.COLUMNS)."""
    return {"dedup_key": signal.dedup_key, "source": signal.source, "fingerprint": signal.fingerprint,
            "status": signal.status, "labels": signal.labels, "annotations": signal.annotations,
            "starts_at": signal.starts_at, "ends_at": signal.ends_at, "received_at": now, "last_seen_at": now,
            "repeats": 0, "raw": signal.raw, "rule": mapping.rule, "kind": mapping.kind,
            "candidate_host": mapping.candidate, "note": mapping.note}


@dataclass
class _Tracked:
    """An incident as one intake transaction has changed it so far."""

    id: int
    host: str
    state: str
    is_open: bool
    proof_id: int | None
    counts: dict  # {"firing": {source: n}, "resolved": {source: n}}
    changed: bool = False
    wake: float | None = None  # look at it again within this many seconds (incidents.join_wakes)

    @classmethod
    def of(cls, row) -> "_Tracked":
        counts = row.signal_counts or {}
        return cls(row.id, row.host, row.state, row.closed_at is None, row.proof_id,
                   {FIRING: dict(counts.get(FIRING, {})), RESOLVED: dict(counts.get(RESOLVED, {}))})

    def firing_sources(self) -> frozenset[str]:
        return frozenset(source for source, n in self.counts[FIRING].items() if n > 0)

    def wake_within(self, seconds: float | None) -> None:
        if seconds is not None:
            self.wake = seconds if self.wake is None else min(self.wake, seconds)


class Store(Reads):
    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.reader = readers(engine)  # transactions that only read take no write lock
        self._write_lock = WriteLock(engine)
        self.intake_turn = IntakeTurn(engine)
        self._upsert_signals = receipts.SignalUpsert(engine.dialect)
        self._receipts = GroupCommit(self._store_groups, name="receipts")

    def _write(self):
        return writing(self.engine, self._write_lock)

    # ---- signals -------------------------------------------------------------------

    def add_signals(self, items: Iterable[tuple[Signal, Mapping]], now: datetime) -> list[dict]:
        """Store signals durably; a signal seen before only bumps its repeat count. Returns once
        they are committed, together with whatever other requests stored meanwhile (group commit)."""
        return self._receipts.submit((list(items), now))

    def add_signals_later(self, items: Iterable[tuple[Signal, Mapping]], now: datetime) -> Future:
        """add_signals() without waiting: the future gives its result once committed."""
        return self._receipts.submit_later((list(items), now))

    def _store_groups(self, groups: list[tuple[list[tuple[Signal, Mapping]], datetime]]) -> list[list[dict]]:
        """Every request's signals in one transaction, one statement for all of them (or one per
        time the same alert comes again in the group); each request's results in its own order."""
        out: list[list[dict]] = [[{}] * len(items) for items, _ in groups]
        # rows locked in one global order: two transactions sharing alerts cannot deadlock
        order = sorted(((g, i) for g, (items, _) in enumerate(groups) for i in range(len(items))),
                       key=lambda gi: groups[gi[0]][0][gi[1]][0].dedup_key)
        # an alert twice in a group goes in a later statement: an upsert takes a row once
        rounds: list[list[tuple[int, int]]] = []
        seen: dict[str, int] = {}
        for g, i in order:
            key = groups[g][0][i][0].dedup_key
            n = seen[key] = seen.get(key, -1) + 1
            if n == len(rounds):
                rounds.append([])
            rounds[n].append((g, i))
        with self._write() as conn:
            for batch in rounds:
                values = [_stored(*groups[g][0][i], groups[g][1]) for g, i in batch]
                rows = self._upsert_signals.run(conn, values)
                for (g, i), stored in zip(batch, values):
                    signal_id, repeats = rows[stored["dedup_key"]]
                    out[g][i] = {"id": signal_id, "duplicate": repeats > 0, "fingerprint": stored["fingerprint"],
                                 "status": stored["status"], "rule": stored["rule"], "kind": stored["kind"],
                                 "candidate_host": stored["candidate_host"], "note": stored["note"]}
        return out

    def unprocessed_signals(self, limit: int = 100) -> list[dict]:
        """The oldest signals not yet taken in: what intake needs of each."""
        with self.reader.connect() as conn:
            return [_row(r) for r in conn.execute(_UNPROCESSED, {"limit": limit})]

    def intake(self, signal_id: int, host: str | None, note: str, now: datetime, *,
               dry_run: bool, confirmation_window: float) -> int | None:
        """Attach one stored signal to its host's incident (see intake_many)."""
        return self.intake_many([(signal_id, host, note)], now, dry_run=dry_run,
                                confirmation_window=confirmation_window)[0]

    def intake_many(self, items: list[tuple[int, str | None, str]], now: datetime, *,
                    dry_run: bool, confirmation_window: float) -> list[int | None]:
        """Attach stored signals (id, resolved host, note) to their hosts' incidents, in order, as
        incidents.admit() says, in one transaction. Each incident's firing and resolved counts
        are kept up to date here; the incident is nudged only when the change can alter what
        decide() says, at once or within a few seconds (incidents.join_wakes).

        Returns, per signal, the incident id it touched, or None. A signal is taken in once: the
        conditional update is the claim, whichever worker gets there first.
        """
        with self._write() as conn:
            # another worker may be opening one of these hosts' incidents right now (or storing a
            # confirmation for it): wait for it, then join what it committed. Sorted: no deadlock.
            for host in sorted({host for _, host, _ in items if host is not None}):
                lock(conn, f"host:{host}")
            claimed = {row.id: row for row in conn.execute(
                _CLAIM_SIGNALS, {"signal_ids": [signal_id for signal_id, _, _ in items], "taken_at": now})}
            batch = _IntakeBatch(self, conn, now, dry_run, list(claimed.values()),
                                 {host for signal_id, host, _ in items if host is not None and signal_id in claimed},
                                 confirmation_window)
            out = [None if signal_id not in claimed else batch.take(claimed[signal_id], host, note)
                   for signal_id, host, note in items]
            batch.finish()
        return out

    def _bind_early_confirmations(self, conn, host: str, incident_id: int, now: datetime) -> None:
        """A confirmation that arrived first (the monitor fenced before alerting) may count."""
        waiting = conn.execute(_WAITING_EVIDENCE, {"host": host}).all()
        if not waiting:  # the usual case: one query
            return
        last_closed = conn.execute(_LAST_CLOSED, {"host": host}).scalar()
        for ev in waiting:
            if not sm.early_confirmation_counts(ev.at, ev.expires_at, now, last_closed):
                continue
            bound = conn.execute(_BIND_WAITING, {"evidence_id": ev.id, "to_incident": incident_id})
            if bound.rowcount == 1:
                _timeline(conn, incident_id, now, sm.SUSPECTED, sm.SUSPECTED,
                          f"earlier fencing confirmation by {ev.actor} counts", detail={"evidence_id": ev.id})

    # ---- inventory -------------------------------------------------------------------

    def replace_inventory(self, services: list[dict], now: datetime) -> None:
        with self._write() as conn:
            lock(conn, "inventory")  # another process refreshing at once would insert the same hosts
            conn.execute(compute_hosts.delete())
            if services:
                conn.execute(compute_hosts.insert(), [{**s, "refreshed_at": now} for s in services])

    def inventory(self) -> tuple[list[str], datetime | None]:
        with self.reader.connect() as conn:
            rows = conn.execute(sa.select(compute_hosts.c.host, compute_hosts.c.refreshed_at)).all()
        return [r.host for r in rows], (max(r.refreshed_at for r in rows) if rows else None)

    # ---- engine: claim, snapshot, commit ---------------------------------------------

    def next_due(self, now: datetime) -> datetime | None:
        """When this worker may next find work: a leased incident is not due before its lease ends."""
        with self.reader.connect() as conn:
            return conn.execute(prepared.NEXT_DUE, {"now": now}).scalar()

    def due_incidents(self, now: datetime, limit: int = 20) -> list[int]:
        with self.reader.connect() as conn:
            return list(conn.execute(prepared.DUE, {"now": now, "limit": limit}).scalars())

    def claim(self, incident_id: int, owner: str, now: datetime, lease_seconds: float) -> Claim | None:
        """Take the incident's lease; a new epoch makes any older holder's commit fail."""
        with self._write() as conn:
            row = conn.execute(prepared.CLAIM, {"incident": incident_id, "now": now, "worker": owner,
                                                "until": now + timedelta(seconds=lease_seconds)}).first()
            return None if row is None else self._snapshot(conn, row, now)

    def renew(self, claim: Claim, owner: str, now: datetime, lease_seconds: float) -> Claim | None:
        """Take a lease `owner` still holds again, until now + lease_seconds, read afresh
        (None: it ran out or was taken meanwhile)."""
        with self._write() as conn:
            row = conn.execute(prepared.RENEW, {"incident": claim.incident.id, "at_epoch": claim.epoch, "now": now,
                                                "worker": owner,
                                                "until": now + timedelta(seconds=lease_seconds)}).first()
            return None if row is None else self._snapshot(conn, row, now)

    def release_leases(self, owner: str) -> int:
        """Give up every lease `owner` holds: a worker shutting down, its steps over."""
        with self._write() as conn:
            return conn.execute(incidents.update().where(incidents.c.lease_owner == owner)
                                .values(lease_owner=None, lease_expires=None)).rowcount

    def snapshot(self, incident_id: int, now: datetime) -> Snapshot | None:
        with self.reader.connect() as conn:
            rows = conn.execute(prepared.SNAPSHOT, {"incident": incident_id}).all()
            if not rows:
                return None
            servers = server_actions.load(conn, incident_id, rows[0].state)
        return _snapshot(rows[0], tuple(_joined_evidence(r) for r in rows if r.ev_id is not None), now, servers)

    @staticmethod
    def _snapshot(conn, row, now: datetime) -> Snapshot:
        """The snapshot of an incident row read in this transaction."""
        return _snapshot(row, tuple(_evidence(ev) for ev in conn.execute(prepared.EVIDENCE_OF, {"incident": row.id})),
                         now, server_actions.load(conn, row.id, row.state))

    def commit(self, claim: Claim, owner: str, decision: Decision, now: datetime,
               outcome: Outcome | None = None, *, keep_lease: bool = False,
               lease_until: datetime | None = None) -> bool:
        """Record a step's outcome and decision, if this worker still holds the lease.

        With `lease_until`, the step ran on an unleased snapshot (its effect changed nothing):
        it lands only if nobody moved or leased the incident since, and takes the lease until
        then when `keep_lease`, so the next step needs no claim of its own.
        """
        return self.advance(claim, owner, decision, now, outcome, keep_lease=keep_lease,
                            lease_until=lease_until) is not None

    def advance(self, claim: Claim, owner: str, decision: Decision, now: datetime,
                outcome: Outcome | None = None, *, keep_lease: bool = False,
                lease_until: datetime | None = None) -> Snapshot | None:
        """commit(), returning the snapshot the next step starts from (None: lease lost).
        When no event touched the incident meanwhile (same nudges), that is what was just
        written, without reading it back."""
        with self._write() as conn:
            return self._advance(conn, claim, owner, decision, now, outcome, keep_lease, lease_until)

    def _advance(self, conn, claim: Claim, owner: str, decision: Decision, now: datetime,
                 outcome: Outcome | None, keep_lease: bool, lease_until: datetime | None) -> Snapshot | None:
        values: dict[str, Any] = _transition(decision, now)
        epoch = claim.epoch
        if lease_until is not None:
            epoch += 1
            if keep_lease:
                values.update(lease_owner=owner, lease_expires=lease_until)
        if not keep_lease:
            values.update(lease_owner=None, lease_expires=None)
        # proof already recorded (a person's confirmation): bound by the same UPDATE, if it is this incident's
        known = decision.to_state is not None and decision.proof is not None and decision.proof.id is not None
        statement = prepared.advance(tuple(sorted(values)), lease_until is not None, known)
        params = {f"set_{column}": value for column, value in values.items()}
        params.update(incident=claim.incident.id, at_epoch=claim.epoch, worker=owner, now=now, seen_nudges=claim.nudges,
                      due=decision.due_at, proof=decision.proof.id if known else None)
        row = conn.execute(statement, params).first()
        if row is None:
            return None  # the lease was lost: another worker owns this incident now
        if known and row.proof_id != decision.proof.id:  # decide() never names foreign proof; the database says so too
            raise ValueError(f"evidence {decision.proof.id} does not belong to incident {claim.incident.id}")
        proof = self._record(conn, claim.incident, decision, now, outcome, bound=known)
        if row.nudges != claim.nudges:
            return replace(self._snapshot(conn, conn.execute(prepared.INCIDENT, {"incident": claim.incident.id}).one(),
                                          now), epoch=epoch)
        inc = claim.incident
        if decision.to_state is not None:
            inc = replace(inc, state=decision.to_state, resume_state=decision.resume_state,
                          fence_deadline=decision.fence_deadline or inc.fence_deadline,
                          return_deadline=decision.return_deadline or inc.return_deadline,
                          proof_id=proof.id if proof else inc.proof_id)
            if decision.fence_step is not None:
                inc = replace(inc, fence_method=decision.fence_step[0], fence_attempt=decision.fence_step[1],
                              fence_deadline=decision.fence_deadline)
        bound = claim.evidence + ((proof,) if proof is not None and proof not in claim.evidence else ())
        rows = sv.merge(claim.servers, outcome.servers) if outcome is not None else claim.servers
        return replace(claim, incident=inc, epoch=epoch, evidence=bound, proof=proof or claim.proof, servers=rows)

    def _record(self, conn, inc: Incident, decision: Decision, now: datetime, outcome: Outcome | None,
                actor: str = SYSTEM, bound: bool = False) -> Evidence | None:
        """The rest of what a decision says: its effect's outcome, its proof (unless the caller
        has `bound` it already), its timeline row. Returns the proof as bound (with its id)."""
        rows = []
        if outcome is not None and outcome.servers:
            server_actions.save(conn, inc.id, outcome.servers, now)
        if outcome is not None and outcome.note:
            rows.append(_timeline_row(inc.id, now, inc.state, inc.state, outcome.note, detail=outcome.detail))
        proof = None
        if decision.to_state is not None:
            detail = dict(decision.detail)
            if decision.proof is not None:
                proof_id = decision.proof.id if bound else self._bind_proof(conn, inc, decision.proof)
                proof = replace(decision.proof, id=proof_id, incident_id=inc.id)
                detail["evidence_id"] = proof.id
            rows.append(_timeline_row(inc.id, now, inc.state, decision.to_state, decision.cause, actor, detail))
        if rows:
            conn.execute(prepared.ADD_TIMELINE, rows)
        return proof

    @staticmethod
    def _bind_proof(conn, inc: Incident, proof: Evidence) -> int:
        """Make `proof` the incident's; evidence found by a driver just now is recorded first."""
        if proof.id is None:
            proof_id = conn.execute(prepared.ADD_EVIDENCE, {
                "host": inc.host, "incident_id": inc.id, "kind": proof.kind, "actor": proof.actor,
                "reason": proof.reason, "at": proof.at, "expires_at": proof.at, "detail": proof.detail,
            }).inserted_primary_key[0]
        else:
            owned = conn.execute(sa.select(evidence.c.id).where(
                evidence.c.id == proof.id, evidence.c.incident_id == inc.id, evidence.c.host == inc.host)).first()
            if owned is None:  # decide() never names foreign proof; the database says so too
                raise ValueError(f"evidence {proof.id} does not belong to incident {inc.id}")
            proof_id = proof.id
        conn.execute(prepared.SET_PROOF, {"incident": inc.id, "proof": proof_id})
        return proof_id

    # ---- operators -------------------------------------------------------------------

    def open_incident_for(self, host: str) -> dict | None:
        with self.reader.connect() as conn:
            row = conn.execute(sa.select(incidents).where(
                incidents.c.host == host, incidents.c.closed_at.is_(None))).first()
        return None if row is None else _row(row)

    def add_confirmation(self, host: str, actor: str, reason: str, now: datetime, window: float,
                         detail: dict, step: FirstStep | None = None) -> tuple[dict, Claim | None]:
        """Record a person's fencing confirmation as evidence. It belongs to the host's open
        incident (more evidence, if it has proof already), or, with none open, waits up to
        `window` seconds for the host's next incident (incidents.early_confirmation_counts).

        With `step` (the engine's), the incident's lease is taken in the same transaction, and
        the step that the confirmation settles is committed with it: one commit where there
        were two. Returns the record and that claim (None: no incident, or leased elsewhere)."""
        claim = None
        with self._write() as conn:
            lock(conn, f"host:{host}")  # else an intake opening the incident now would not see it
            inc = conn.execute(prepared.NUDGE_OPEN, {"on_host": host, "now": now}).first()  # it looks again now
            target = None if inc is None else inc.id
            evidence_id, expires = _add_evidence(conn, host, target, "manual", actor, reason, now, window, detail)
            if target is not None:
                more = " (more evidence)" if inc.proof_id is not None else ""
                _timeline(conn, target, now, inc.state, inc.state, f"fencing confirmed by {actor}: {reason}{more}",
                          actor=actor, detail={"evidence_id": evidence_id})
                if step is not None and inc.state in step.states:
                    claim = self._first_step(conn, target, now, step)
        return {"evidence_id": evidence_id, "incident_id": target, "host": host, "actor": actor,
                "reason": reason, "at": now, "expires_at": expires}, claim

    def _first_step(self, conn, incident_id: int, now: datetime, step: FirstStep) -> Claim | None:
        row = conn.execute(prepared.CLAIM, {"incident": incident_id, "now": now, "worker": step.owner,
                                            "until": now + timedelta(seconds=step.lease_seconds)}).first()
        if row is None:
            return None  # another worker holds it: the nudge makes it look again
        claim = self._snapshot(conn, row, now)
        settled = step.run(claim)
        if settled is None:
            return claim
        decision, outcome = settled
        return self._advance(conn, claim, step.owner, decision, now, outcome, True, None)

    def operator_action(self, incident_id: int, action: str, actor: str, reason: str, now: datetime,
                        policy: Policy = Policy(), gate: str | None = None) -> dict:
        """A person's retry, close, cancel or approval of a gate, as decide() rules on it.
        LookupError: no such incident; ValueError: refused now (the message says why)."""
        with self._write() as conn:
            # FOR UPDATE: two operators at once on PostgreSQL would both pass decide()
            row = conn.execute(sa.select(incidents).where(incidents.c.id == incident_id).with_for_update()).first()
            if row is None:
                raise LookupError(f"no incident {incident_id}")
            snap = self._snapshot(conn, row, now)
            decision = sm.decide(sm.Facts(
                now=now, incident=snap.incident, signals=snap.signals, evidence=snap.evidence, proof=snap.proof,
                policy=policy, action=OperatorAction(action, actor, reason, gate), busy=snap.busy,
                servers=snap.servers))
            if decision.refused:
                raise ValueError(decision.refused)
            if action == sm.APPROVE:
                gating.record_approval(conn, incident_id, gate, actor, reason, now)
                if decision.to_state is None:  # not held now: the approval waits for the gate
                    _timeline(conn, incident_id, now, snap.incident.state, snap.incident.state, decision.cause,
                              actor=actor, detail={"approved": gate})
            conn.execute(incidents.update().where(incidents.c.id == incident_id).values(
                {"updated_at": now, "due_at": decision.due_at, "nudges": incidents.c.nudges + 1,
                 "epoch": incidents.c.epoch + 1, **_transition(decision, now)}))
            self._record(conn, snap.incident, decision, now, None, actor=actor)
        return self.get_incident(incident_id)

    def set_pause(self, on: bool, actor: str, reason: str, now: datetime) -> str | None:
        """Pause the bridge (nothing new starts) or lift the pause; returns what is in force."""
        with self._write() as conn:
            gating.set_paused(conn, on, actor, reason, now)
            return gating.paused(conn)

    def note_wait(self, incident_id: int, cause: str, detail: dict, now: datetime) -> None:
        """A gate makes a suspected incident wait: on its timeline once per gate in a row."""
        with self.reader.connect() as conn:  # most waits are a poll of the same one: no write lock
            if gating.waiting_on(conn, incident_id) == detail["gate"]:
                return
        with self._write() as conn:
            gating.note_wait(conn, incident_id, sm.SUSPECTED, cause, detail, now)

    def mark_storm(self, now: datetime) -> None:
        """The fleet is over a mass limit now: the storm cooldown starts again (every process)."""
        with self._write() as conn:
            gating.set_mark(conn, gating.STORM, now)

    def pause_state(self) -> str | None:
        with self.reader.connect() as conn:
            return gating.paused(conn)

    # ---- read side -------------------------------------------------------------------

    def counts(self) -> dict[str, dict]:
        with self.reader.connect() as conn:
            by_state = dict(conn.execute(sa.select(incidents.c.state, sa.func.count())
                                         .group_by(incidents.c.state)).all())
            by_source = dict(conn.execute(sa.select(signals.c.source, sa.func.count())
                                          .group_by(signals.c.source)).all())
        return {"incidents": by_state, "signals": by_source}


# intake's statements, built once; each runs once per batch (or per source, per new incident)
_UNPROCESSED = (sa.select(signals.c.id, signals.c.source, signals.c.fingerprint, signals.c.status, signals.c.kind,
                          signals.c.candidate_host, signals.c.note)
                .where(signals.c.processed_at.is_(None)).order_by(signals.c.id).limit(sa.bindparam("limit")))
_CLAIM_SIGNALS = (signals.update().where(signals.c.id.in_(sa.bindparam("signal_ids", expanding=True)),
                                         signals.c.processed_at.is_(None))
                  .values(processed_at=sa.bindparam("taken_at", type_=UTCDateTime))
                  .returning(signals.c.id, signals.c.source, signals.c.fingerprint, signals.c.status,
                             signals.c.kind, signals.c.rule))
_TAKE_SIGNAL = signals.update().where(signals.c.id == sa.bindparam("signal_id")).values(
    host=sa.bindparam("to_host"), note=sa.bindparam("to_note"), incident_id=sa.bindparam("to_incident"))
# an alert's reports, by the (source, fingerprint) index
_REPORTS = sa.select(signals.c.id, signals.c.fingerprint, signals.c.status, signals.c.incident_id).where(
    signals.c.source == sa.bindparam("source"),
    signals.c.fingerprint.in_(sa.bindparam("fingerprints", expanding=True)))
# what intake needs of an incident (_Tracked.of): the other columns' conversions cost per row
_TRACKED = (incidents.c.id, incidents.c.host, incidents.c.state, incidents.c.closed_at, incidents.c.proof_id,
            incidents.c.signal_counts)
_OPEN_INCIDENTS = sa.select(*_TRACKED).where(incidents.c.host.in_(sa.bindparam("hosts", expanding=True)),
                                             incidents.c.closed_at.is_(None))
_INCIDENT = sa.select(*_TRACKED).where(incidents.c.id == sa.bindparam("incident_id"))
_OPEN = incidents.insert().values(state=sm.SUSPECTED, epoch=0, nudges=0)
_WAITING_EVIDENCE = sa.select(evidence).where(evidence.c.host == sa.bindparam("host"),
                                              evidence.c.incident_id.is_(None)).order_by(evidence.c.id)
_LAST_CLOSED = sa.select(sa.type_coerce(sa.func.max(incidents.c.closed_at), UTCDateTime)).where(
    incidents.c.host == sa.bindparam("host"))
_BIND_WAITING = evidence.update().where(evidence.c.id == sa.bindparam("evidence_id"),
                                        evidence.c.incident_id.is_(None)).values(incident_id=sa.bindparam("to_incident"))
_SET_COUNTS = incidents.update().where(incidents.c.id == sa.bindparam("incident_id")).values(
    signal_counts=sa.bindparam("counts", type_=incidents.c.signal_counts.type))
# due now, and a step under way looks again when it lands (the nudge)
_SET_COUNTS_AND_NUDGE = _SET_COUNTS.values(due_at=sa.bindparam("due", type_=UTCDateTime),
                                           nudges=incidents.c.nudges + 1)
# due by then at the latest; no nudge: a step under way would otherwise go round at once, for as
# long as a storm lasts (it lands with its own due time, and the step then reads this report)
_DUE_BY = sa.bindparam("due", type_=UTCDateTime)
_SET_COUNTS_DUE_BY = _SET_COUNTS.values(
    due_at=sa.case((incidents.c.due_at <= _DUE_BY, incidents.c.due_at), else_=_DUE_BY))


@dataclass
class _Report:
    """One stored report of an alert, as this intake transaction has left it so far."""

    id: int
    status: str
    incident_id: int | None


class _IntakeBatch:
    """Signals taken in within one transaction. What they need is read up front, a query per
    kind for the whole batch (their hosts' open incidents, their alerts' earlier reports); the
    counts are kept in memory; the writes go out together, one statement each, by finish()."""

    def __init__(self, store: Store, conn, now: datetime, dry_run: bool, claimed: list, hosts: set[str],
                 window: float = 0):
        self.store, self.conn, self.now, self.dry_run, self.window = store, conn, now, dry_run, window
        self.by_id: dict[int, _Tracked] = {}
        self.open_for: dict[str, _Tracked | None] = dict.fromkeys(hosts)
        if hosts:
            for row in conn.execute(_OPEN_INCIDENTS, {"hosts": sorted(hosts)}):
                self.open_for[row.host] = self.by_id.setdefault(row.id, _Tracked.of(row))
        self.reports: dict[tuple[str, str], list[_Report]] = {}
        by_source: dict[str, set[str]] = {}
        for sig in claimed:
            by_source.setdefault(sig.source, set()).add(sig.fingerprint)
        for source, fingerprints in sorted(by_source.items()):
            for r in conn.execute(_REPORTS, {"source": source, "fingerprints": sorted(fingerprints)}):
                self.reports.setdefault((source, r.fingerprint), []).append(_Report(r.id, r.status, r.incident_id))
        self.taken: list[dict] = []
        self.bursts = arrivals.Bursts(conn, now, _timeline_row)  # joins, attaches, resolves: one entry per burst

    def take(self, sig, host: str | None, note: str) -> int | None:
        inc = self._power_off(sig, host) if sig.kind == POWER_OFF else self._incident_for(sig, host)
        incident_id = None if inc is None else inc.id
        self.taken.append({"signal_id": sig.id, "to_host": host, "to_note": note, "to_incident": incident_id})
        for report in self._reports(sig):
            if report.id == sig.id:
                report.incident_id = incident_id
        return incident_id

    def _reports(self, sig) -> list[_Report]:
        return self.reports.get((sig.source, sig.fingerprint), [])

    def _incident_for(self, sig, host: str | None) -> _Tracked | None:
        if sig.kind == HOST_DOWN and sig.status == RESOLVED:
            return self._resolved(sig)
        inc = self.open_for.get(host) if host is not None else None
        admission = sm.admit(sig.kind == HOST_DOWN, sig.status == FIRING, host,
                             None if inc is None else Incident(inc.id, inc.host, inc.state, self.dry_run),
                             sig.source, sig.fingerprint, sig.rule)
        if admission.action == sm.RECORD:
            return None
        if admission.action == sm.OPEN:
            inc = self._open(host, sig.id, admission.cause)
        else:
            verb = arrivals.JOINED if admission.action == sm.JOIN else arrivals.ATTACHED
            self.bursts.note(inc.id, inc.state, verb, sig, admission.cause)
        self._count(inc, sig)
        return inc

    def _power_off(self, sig, host: str | None) -> _Tracked | None:
        """A rule with kind power_off: its firing alert is fencing evidence (kind "alert") for the
        host, bound like a person's confirmation. Its resolve changes nothing."""
        if sig.status != FIRING or host is None:
            return None
        inc = self.open_for.get(host)
        actor = f"{sig.source} alert {sig.fingerprint}"
        reason = f"rule {sig.rule!r}: the host's power is off"
        evidence_id, _ = _add_evidence(self.conn, host, inc and inc.id, "alert", actor, reason, self.now, self.window,
                                       {"signal_id": sig.id, "source": sig.source, "fingerprint": sig.fingerprint,
                                        "rule": sig.rule})
        if inc is None:
            return None
        _timeline(self.conn, inc.id, self.now, inc.state, inc.state, f"fencing evidence: power-off alert, {actor} "
                  f"({sig.rule})", detail={"evidence_id": evidence_id, "signal_id": sig.id})
        inc.changed = True
        inc.wake_within(0)
        return inc

    def _resolved(self, sig) -> _Tracked | None:
        """A resolved alert goes to the incident its firing twin went to."""
        firing = max((r for r in self._reports(sig) if r.status == FIRING and r.incident_id is not None),
                     key=lambda r: r.id, default=None)
        if firing is None:
            return None
        inc = self._incident(firing.incident_id)
        self._count(inc, sig)
        self.bursts.note(inc.id, inc.state, arrivals.RESOLVED, sig, f"alert resolved: {sig.source} {sig.fingerprint}")
        return inc

    def _count(self, inc: _Tracked, sig) -> None:
        """The signal's alert now counts by this, its latest status (unless a later one came first)."""
        before = max((r for r in self._reports(sig) if r.incident_id == inc.id and r.id != sig.id),
                     key=lambda r: r.id, default=None)
        if before is not None and before.id > sig.id:
            # an older report of the alert, taken in late: the latest one still counts; a
            # suspected incident looks again all the same (its gates count fire/resolve reports)
            if inc.is_open:
                sources = inc.firing_sources()
                inc.wake_within(sm.join_wakes(inc.state, inc.proof_id is not None, sources, sources))
            return
        firing_before = inc.firing_sources()
        if before is not None:
            counts = inc.counts[before.status]
            counts[sig.source] -= 1
            if not counts[sig.source]:
                del counts[sig.source]
        inc.counts[sig.status][sig.source] = inc.counts[sig.status].get(sig.source, 0) + 1
        inc.changed = True
        if inc.is_open:
            inc.wake_within(sm.join_wakes(inc.state, inc.proof_id is not None, firing_before, inc.firing_sources()))

    def _incident(self, incident_id: int) -> _Tracked:
        if incident_id not in self.by_id:
            row = self.conn.execute(_INCIDENT, {"incident_id": incident_id}).one()
            self.by_id[incident_id] = _Tracked.of(row)
        return self.by_id[incident_id]

    def _open(self, host: str, signal_id: int, cause: str) -> _Tracked:
        now, conn = self.now, self.conn
        incident_id = conn.execute(_OPEN, {"host": host, "dry_run": self.dry_run, "opened_at": now,
                                           "updated_at": now, "due_at": now}).inserted_primary_key[0]
        _timeline(conn, incident_id, now, None, sm.SUSPECTED, cause,
                  detail={"signal_id": signal_id, "dry_run": self.dry_run})
        self.store._bind_early_confirmations(conn, host, incident_id, now)
        inc = _Tracked(incident_id, host, sm.SUSPECTED, True, None, {FIRING: {}, RESOLVED: {}})
        self.by_id[incident_id] = self.open_for[host] = inc
        return inc

    def finish(self) -> None:
        """Write the signals' incidents, the bursts, and each changed incident's counts (nudging
        those whose decision may change): one statement each."""
        if self.taken:
            self.conn.execute(_TAKE_SIGNAL, self.taken)
        self.bursts.flush()
        counted, nudged, due_by = [], [], []
        for inc in sorted(self.by_id.values(), key=lambda i: i.id):  # one lock order: no deadlock
            row = {"incident_id": inc.id, "counts": inc.counts}
            if inc.wake == 0:
                nudged.append({**row, "due": self.now})
            elif inc.wake is not None:
                due_by.append({**row, "due": self.now + timedelta(seconds=inc.wake)})
            elif inc.changed:
                counted.append(row)
        for statement, rows in ((_SET_COUNTS, counted), (_SET_COUNTS_AND_NUDGE, nudged), (_SET_COUNTS_DUE_BY, due_by)):
            if rows:
                self.conn.execute(statement, rows)
