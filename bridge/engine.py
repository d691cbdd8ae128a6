"""The engine: takes in new signals and advances incidents, one idempotent step at a time.

A step is: claim the incident's lease (a new epoch), decide (pure), carry out the one
effect the decision names, commit the outcome if the lease is still ours. A crash
anywhere leaves the incident claimable again once the lease expires, at the step it
had reached; Nova calls check the service first, so a repeated step changes nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Callable

from bridge import incidents as sm
from bridge.fencing import driver_for
from bridge.gates import GateClosed, require_fencing_proof
from bridge.incidents import Decision, World
from bridge.nova import CallRecord, Nova, NovaError
from bridge.rules import HOST_DOWN, resolve_host
from bridge.signals import FIRING
from bridge.store import Store

log = logging.getLogger(__name__)

INVENTORY_RETRY_SECONDS = 5.0


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Engine:
    def __init__(self, config, store: Store, nova: Nova | None, *, clock: Callable[[], datetime] = utcnow):
        self.config = config
        self.store = store
        self.nova = nova
        self.fencing = driver_for(config)
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._inventory_lock = threading.Lock()
        self._inventory_tried: datetime | None = None
        self._wakeups: list[threading.Event] = []
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # ---- running -------------------------------------------------------------------

    def start(self) -> None:
        for n in range(self.config["engine"]["threads"]):
            event = threading.Event()
            self._wakeups.append(event)
            thread = threading.Thread(target=self._loop, args=(event,), name=f"engine-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("engine started: %d threads, owner %s", len(self._threads), self.owner)

    def stop(self, timeout: float = 10) -> None:
        self._stopping.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout)

    def alive(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def wake(self) -> None:
        for event in self._wakeups:
            event.set()

    def _loop(self, event: threading.Event) -> None:
        idle = self.config["engine"]["idle_poll"]
        while not self._stopping.is_set():
            event.clear()
            try:
                busy = self.run_once()
            except Exception:
                log.exception("engine round failed; trying again")
                busy = False
            if busy:
                continue
            now = self.clock()
            due = self.store.next_due(now)
            wait = idle if due is None else max(0.0, min(idle, (due - now).total_seconds()))
            event.wait(wait)

    def run_once(self) -> bool:
        """One round: take in new signals, then step every due incident. True if anything moved."""
        moved = self.intake_pending()
        for incident_id in self.store.due_incidents(self.clock()):
            moved = self.step(incident_id) or moved
        return moved

    # ---- intake ----------------------------------------------------------------------

    def known_hosts(self, refresh: bool = False) -> list[str] | None:
        """Nova's compute hosts from the stored inventory, refreshed when old or asked to."""
        if self.nova is None:
            return None
        with self._inventory_lock:  # one refresh at a time; the others then read its result
            hosts, refreshed = self.store.inventory()
            now = self.clock()
            stale = refreshed is None or now - refreshed > timedelta(seconds=self.config["nova"]["inventory_ttl"])
            recently_tried = self._inventory_tried is not None and \
                now - self._inventory_tried < timedelta(seconds=INVENTORY_RETRY_SECONDS)
            if (stale or refresh) and not recently_tried:
                self._inventory_tried = now
                try:
                    services = self.nova.compute_services()
                except NovaError as exc:
                    log.warning("cannot refresh the compute host inventory: %s", exc)
                else:
                    self.store.replace_inventory(services, self.clock())
                    return [s["host"] for s in services]
        return hosts

    def intake_pending(self) -> bool:
        moved = False
        cfg = self.config
        for sig in self.store.unprocessed_signals():
            host, note = None, sig["note"]
            if sig["kind"] == HOST_DOWN and sig["status"] == FIRING and sig["candidate_host"]:
                known = self.known_hosts()
                host, how = resolve_host(sig["candidate_host"], known)
                if host is None and known is not None:
                    known = self.known_hosts(refresh=True)  # a host added since the last refresh
                    host, how = resolve_host(sig["candidate_host"], known)
                if host is None and not known:
                    log.debug("signal %s waits: no compute host inventory from Nova yet", sig["id"])
                    continue  # kept unprocessed; nothing acts on a host we cannot check
                note = f"{note}; {how}"
            incident_id = self.store.intake(sig["id"], host, note, self.clock(), dry_run=cfg["dry_run"],
                                            confirmation_window=cfg["fencing"]["confirmation_window"])
            moved = True
            if incident_id is not None:
                log.info("signal %s -> incident %s (%s)", sig["id"], incident_id, note)
        return moved

    # ---- steps -----------------------------------------------------------------------

    def step(self, incident_id: int) -> bool:
        fencing = self.config["fencing"]
        claim = self.store.claim(incident_id, self.owner, self.clock(), self.config["engine"]["lease_seconds"])
        if claim is None:
            return False
        world = World(now=self.clock(), firing=claim.firing, proof=claim.proof,
                      fencing_timeout=fencing["timeout"], on_timeout=fencing["on_timeout"])
        decision = sm.decide(claim.incident, world)
        notes: list[tuple[str, dict]] = []
        if decision.effect:
            try:
                cause, detail = self._carry_out(decision.effect, claim)
                notes.append((cause, detail))
                if detail.get("dry_run"):
                    decision = dataclasses.replace(decision, cause=f"{decision.cause} (dry-run: Nova not called)")
            except (NovaError, GateClosed) as exc:
                detail = {"attempts": exc.attempts} if isinstance(exc, NovaError) else {}
                decision = Decision(sm.HELD, str(exc), detail=detail)
        if not self.store.commit(claim, self.owner, decision, self.clock(), notes):
            log.warning("incident %s: lease lost during step; another worker carries on", incident_id)
            return False
        if decision.to_state:
            log.info("incident %s %s: %s -> %s: %s", incident_id, claim.incident.host,
                     claim.incident.state, decision.to_state, decision.cause)
        return True

    def _carry_out(self, effect: str, claim) -> tuple[str, dict]:
        inc = claim.incident
        if effect == sm.FENCE_REQUEST:
            return self.fencing.request(inc)
        require_fencing_proof(inc, claim.proof)
        dry_run = inc.dry_run or self.config["dry_run"]
        if effect == sm.FORCE_DOWN:
            call, request = "force_down", {"forced_down": True}
            run = lambda: self.nova.force_down(inc.host, dry_run=dry_run)  # noqa: E731
        else:
            reason = sm.disabled_reason(self.config["nova"]["reason_prefix"], inc, claim.proof)
            call, request = "disable", {"status": "disabled", "disabled_reason": reason}
            run = lambda: self.nova.disable(inc.host, reason, dry_run=dry_run)  # noqa: E731
        if self.nova is None:  # no cloud at all is only ever dry-run (the config insists)
            record = CallRecord(call, inc.host, dry_run=True, request={"host": inc.host, **request})
        else:
            record = run()
        if record.skipped:
            verb = f"nova {record.call}: skipped, {record.skipped}"
        elif record.dry_run:
            verb = f"dry-run: would call nova {record.call}"
        else:
            verb = f"nova {record.call} done in {record.seconds:.3f}s"
        return verb, record.as_detail()
