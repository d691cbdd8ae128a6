"""The engine: takes in new signals and advances incidents.

A step: claim the incident's lease (a new epoch), take a snapshot of its facts, decide
(pure), carry out the one effect the decision names, decide again with its outcome, and
commit that if the lease is still ours. While the next decision is due at once, the worker
goes on under the same lease; every transition is committed before the next effect
starts. A crash anywhere leaves the incident claimable again once the lease expires, at
the step it had reached; Nova calls check the service first, so a repeated step changes
nothing twice.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import queue
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from bridge import incidents as sm
from bridge import observe
from bridge.effects import FenceCheck, Outcome
from bridge.executor import Executor
from bridge.fencing import driver_for
from bridge.gates import Limits
from bridge.gating import GateInputs
from bridge.housekeeping import Housekeeping
from bridge.incidents import Facts, Policy
from bridge.inventory import Inventory, InventoryUnavailable, domain_aggregates
from bridge.nova import Nova
from bridge.rules import HOST_DOWN, POWER_OFF
from bridge.servers import ServersPolicy
from bridge.signals import FIRING
from bridge.store import Store, server_actions
from bridge.store.queries import Claim, FirstStep

log = logging.getLogger(__name__)

# steps one claim may run back to back (a whole fencing-to-out-of-service run is five)
MAX_STEPS_PER_CLAIM = 8
# a claim handed to a thread is used as it is only this soon (else the lease is taken again):
# its lease was sized for an effect that starts at once
HANDED_FRESH = 0.5
# signals taken in per transaction: enough to keep up with a storm, few enough that a
# webhook's commit never waits long behind one (100 held the write turn for up to 50 ms, not 90,
# but fell seconds behind a storm over 1,000 hosts)
INTAKE_BATCH = 200


@dataclass(frozen=True)
class Handed:
    """A lease this engine took outside its threads (confirm), handed to one of them."""

    claim: Claim
    observed: tuple  # transitions committed with it, not yet logged
    at: float = field(default_factory=time.monotonic)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def policy_from(config) -> Policy:
    fencing = config["fencing"]
    return Policy(fencing_timeout=fencing["timeout"], on_timeout=fencing["on_timeout"],
                  reason_prefix=config["nova"]["reason_prefix"], gates=Limits.from_config(config),
                  servers=ServersPolicy.from_config(config["servers"]))


class Engine:
    def __init__(self, config, store: Store, nova: Nova | None, *, clock: Callable[[], datetime] = utcnow,
                 inventory: Inventory | None = None):
        self.config = config
        self.store = store
        self.clock = clock
        self.policy = policy_from(config)
        self.inventory = inventory or Inventory(store, nova, ttl=config["nova"]["inventory_ttl"], clock=clock,
                                                aggregates=domain_aggregates(config))
        self.fencing = driver_for(config, nova=nova, wake=self.wake)  # BMC calls in its own bounded pool
        self.executor = Executor(dry_run=config["dry_run"], nova=nova, fencing=self.fencing,
                                 shadow=config["mode"] == "shadow",
                                 server_concurrency=config["servers"]["concurrency"])
        self.gating = GateInputs(config, store, self.inventory, clock)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wakeups: list[threading.Event] = []
        self._next_wakeup = itertools.count()
        self._hinted: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._intake = threading.Lock()
        self._intake_again = False  # a signal arrived while a thread was taking others in
        self.housekeeping = Housekeeping(config, store.engine, clock)

    # ---- running -------------------------------------------------------------------

    def start(self) -> None:
        for n in range(self.config["engine"]["threads"]):
            event = threading.Event()
            self._wakeups.append(event)
            thread = threading.Thread(target=self._loop, args=(event,), name=f"engine-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.config["retention"]["enabled"]:
            self.housekeeping.start()
        log.info("engine started: %d threads, owner %s", len(self._threads), self.owner)

    def stop(self, timeout: float = 10) -> bool:
        """Let steps in flight finish, for `timeout` seconds in all, then give up this engine's
        leases, so that another worker takes its incidents at once. A step still running keeps
        its lease (it expires): nobody else may act on that incident meanwhile. True if all stopped."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self.housekeeping.stop(timeout)
        self.fencing.close()
        for event in self._wakeups:
            event.set()
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            log.warning("engine stopped with a step still running; its lease expires in time")
            return False
        released = self.store.release_leases(self.owner)
        log.info("engine stopped; %d lease(s) released", released)
        return True

    def alive(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def wake(self, incident_id: int | None = None, handed: Handed | None = None) -> None:
        """One thread per event: several at once would only queue for the database's write lock.
        With an incident (a confirmation for it, say), that thread steps it first, from the claim
        `handed` when given. New signals while a thread takes others in wake nobody: that thread
        goes round again (a storm is taken in by one round after another, each batch bigger, not
        by every thread polling)."""
        if incident_id is not None:
            self._hinted.put((incident_id, handed))
        else:
            self._intake_again = True  # set before the check: intake_pending reads it after releasing
            if self._intake.locked():
                return
        if self._wakeups:
            self._wakeups[next(self._next_wakeup) % len(self._wakeups)].set()

    def _loop(self, event: threading.Event) -> None:
        idle = self.config["engine"]["idle_poll"]
        failed = 0  # rounds failed in a row: a lost database fails every one; logged once, then seldom
        while not self._stopping.is_set():
            event.clear()
            try:
                wait = 0.0 if self.run_once() else self._until_due(idle)
            except Exception as exc:
                failed, wait = failed + 1, idle
                if failed == 1:
                    log.exception("engine round failed; trying again")
                elif failed % 100 == 0:
                    log.warning("engine rounds still failing (%d in a row): %s", failed, type(exc).__name__)
            else:
                if failed:
                    log.warning("engine rounds succeed again after %d failed", failed)
                failed = 0
            if wait:
                event.wait(wait)

    def _until_due(self, idle: float) -> float:
        now = self.clock()
        due = self.store.next_due(now)
        return idle if due is None else max(0.0, min(idle, (due - now).total_seconds()))

    def run_once(self) -> bool:
        """One round: step the incidents an event named, take in new signals, then step every
        due incident. True if anything moved."""
        moved = False
        while True:
            try:
                moved = self.step(*self._hinted.get_nowait()) or moved
            except queue.Empty:
                break
        moved = self.intake_pending() or moved
        for incident_id in self.store.due_incidents(self.clock()):
            if self._stopping.is_set():
                break
            moved = self.step(incident_id) or moved
        return moved

    # ---- intake ----------------------------------------------------------------------

    def intake_pending(self) -> bool:
        """Take in the oldest unprocessed signals, as one transaction. True if any were taken (or
        came meanwhile: then the caller goes round again)."""
        if not self._intake.acquire(blocking=False):
            return False  # another thread of this worker is taking them in right now
        try:
            self._intake_again = False
            self.inventory.known_hosts()  # refreshed from Nova (when old) before the turn, not in it
            with self.store.intake_turn:
                took = self._take_in()
        finally:
            self._intake.release()
        return took or self._intake_again  # signals that came meanwhile: go round again

    def _take_in(self) -> bool:
        items = []
        for sig in self.store.unprocessed_signals(INTAKE_BATCH):
            host, note = None, sig["note"]
            if sig["kind"] in (HOST_DOWN, POWER_OFF) and sig["status"] == FIRING and sig["candidate_host"]:
                try:
                    host, how = self.inventory.resolve(sig["candidate_host"])
                except InventoryUnavailable:
                    log.debug("signal %s waits: no compute host inventory from Nova yet", sig["id"])
                    continue  # kept unprocessed; nothing acts on a host we cannot check
                note = f"{note}; {how}"
            items.append((sig["id"], host, note))
        if not items:
            return False
        self.gating.invalidate()
        cfg = self.config
        taken = self.store.intake_many(items, self.clock(), dry_run=cfg["dry_run"],
                                       confirmation_window=cfg["fencing"]["confirmation_window"])
        # one line per batch: a storm would log thousands; the timeline names every signal
        log.info("took in %d signal(s): %d to incidents %s", len(items), sum(i is not None for i in taken),
                 sorted({i for i in taken if i is not None})[:20])
        for (signal_id, _, note), incident_id in zip(items, taken):
            log.debug("signal %s -> incident %s (%s)", signal_id, incident_id, note)
        return True

    # ---- steps -----------------------------------------------------------------------

    def facts(self, snapshot, now: datetime, read: tuple | None = None) -> Facts:
        """`read`: (snapshot, facts) of the same incident a moment ago (GateInputs.facts_for)."""
        return Facts(now=now, incident=snapshot.incident, signals=snapshot.signals, evidence=snapshot.evidence,
                     proof=snapshot.proof, policy=self.policy, plan=self.fencing.plan(snapshot.incident.host),
                     servers=snapshot.servers,
                     rules=server_actions.rules_of(self.store, snapshot.incident, self.policy.servers),
                     **self.gating.facts_for(snapshot, now, read))

    def step(self, incident_id: int, handed: Handed | None = None) -> bool:
        """Advance one incident as far as it goes without waiting. True if it moved.

        The lease is taken before any effect that changes the world; a step whose effect only
        reads (a fencing check) runs on an unleased snapshot and lands only if nothing changed
        meanwhile, taking the lease for the steps after it in the same transaction. A claim
        `handed` over (see confirm) is this engine's lease already.
        """
        unobserved: list[tuple] = list(handed.observed) if handed else []
        try:
            return self._steps(incident_id, unobserved, handed) or bool(handed and handed.observed)
        finally:
            self._observe(unobserved)

    def confirm(self, host: str, actor: str, reason: str, now: datetime, window: float, detail: dict) -> dict:
        """A person's fencing confirmation, as Store.add_confirmation records it. When the host's
        incident waits for fencing proof, the check that finds this confirmation needs no I/O:
        its fenced transition is committed with the confirmation, and an engine thread begins
        the force-down from what was written, without reading it back."""
        settled: list[tuple] = []

        def first_step(claim: Claim) -> tuple[sm.Decision, Outcome] | None:
            result = self._settled(claim, now)
            if result is not None:
                settled.append((claim.incident, *result))
            return result

        record, claim = self.store.add_confirmation(
            host, actor, reason, now, window, detail,
            FirstStep(self.owner, self.config["engine"]["lease_seconds"], frozenset({sm.FENCING}), first_step))
        observed: tuple = ()
        if claim is not None and settled:
            incident, decision, outcome = settled[0]
            self.gating.fired(incident.id, decision, now)
            if decision.to_state:
                observed = ((incident, decision, outcome, now),)
        self.wake(record["incident_id"], None if claim is None else Handed(claim, observed))
        return record

    def _settled(self, claim: Claim, now: datetime) -> tuple[sm.Decision, Outcome] | None:
        """The step this claim takes if its effect is a fencing check that evidence already
        settles (Fencing.settled: a person's or an alert's), else None: no I/O in a transaction."""
        facts = self.facts(claim, now)
        decision = sm.decide(facts)
        if not isinstance(decision.effect, FenceCheck) or not self.fencing.settled(decision.effect, facts):
            return None
        outcome = self.executor.run(decision.effect, facts)
        return sm.decide(dataclasses.replace(facts, outcome=outcome)), outcome

    def _steps(self, incident_id: int, unobserved: list[tuple], handed: Handed | None = None) -> bool:
        lease = self.config["engine"]["lease_seconds"]
        now = self.clock()
        leased = handed is not None
        if handed is None:
            claim = self.store.snapshot(incident_id, now)
            if claim is None or claim.busy or claim.incident.state in sm.TERMINAL:
                return False
        elif time.monotonic() - handed.at < HANDED_FRESH:
            claim = handed.claim
        else:  # it waited for a thread: its lease may be nearly out, or out and taken by another worker
            claim = self.store.renew(handed.claim, self.owner, now, lease)
            if claim is None:
                return False
        for n in range(MAX_STEPS_PER_CLAIM):
            facts = self.facts(claim, now)
            decision = sm.decide(facts)
            if decision.effect is not None and decision.effect.mutates and not leased:
                read = (claim, facts)
                claim, leased = self.store.claim(incident_id, self.owner, now, lease), True
                if claim is None:
                    return False
                facts = self.facts(claim, now, read)
                decision = sm.decide(facts)
            outcome = None
            if decision.effect is not None:
                outcome = self.executor.run(decision.effect, facts)
                now = self.clock()  # the outcome is recorded when it came
                decision = sm.decide(dataclasses.replace(facts, now=now, outcome=outcome))
            # the last transition's log line and metrics (which read the database) come only now:
            # from a commit to the next effect nothing but the decision runs
            self._observe(unobserved)
            go_on = (decision.to_state is not None and not decision.closes and decision.due_at is not None
                     and decision.due_at <= now and n + 1 < MAX_STEPS_PER_CLAIM and not self._stopping.is_set())
            after = self.store.advance(claim, self.owner, decision, now, outcome, keep_lease=go_on,
                                       lease_until=None if leased else now + timedelta(seconds=lease))
            if after is None:
                if leased:
                    log.warning("incident %s: lease lost during step; another worker carries on", incident_id)
                return False
            self.gating.fired(incident_id, decision, now)
            if decision.to_state == sm.FENCING:
                self.gating.fencing_started()
            if decision.to_state:
                unobserved.append((claim.incident, decision, outcome, now))
            if not go_on:
                return decision.to_state is not None
            claim, leased, now = after, True, self.clock()
        return True

    def _observe(self, transitions: list[tuple]) -> None:
        """Log and count committed transitions (observe.transition), oldest first."""
        for incident, decision, outcome, at in transitions:
            observe.transition(self.store, incident, decision, outcome, at)
        transitions.clear()
