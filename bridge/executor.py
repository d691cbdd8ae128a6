"""Carries out effects: one table maps each effect type to the one adapter call that does it.

Dry-run is decided here and nowhere else (`Executor.dry_run`): an incident opened in
dry-run, or a bridge configured so, or no cloud at all. Adapters are told, and change
nothing when told so.

Shadow mode (`mode: shadow`) is decided here too, and goes further: no effect that changes
anything is carried out at all, dry-run or not. Nova's service is read, and the outcome
records the plan (the host, the fencing driver, the Nova calls that would follow); decide()
then holds the incident (gate "shadow") with that plan on its timeline.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta
from typing import Callable

from bridge import metrics
from bridge import servers as sv
from bridge.effects import (Disable, Effect, FenceCheck, FenceRequest, ForceDown, IssueServerRequests, ListServers,
                            Outcome, PollServers, ReleaseServers, ReturnHost)
from bridge.fencing import FencingDriver
from bridge.incidents import Facts, Incident
from bridge.nova import CallRecord, Nova, NovaError
from bridge.servers_run import ServerWork


class Executor:
    def __init__(self, *, dry_run: bool, nova: Nova | None, fencing: FencingDriver, shadow: bool = False,
                 server_concurrency: int = 10):
        self.configured_dry_run = dry_run
        self.nova = nova
        self.fencing = fencing
        self.shadow = shadow
        self.server_work = None if nova is None else ServerWork(nova, server_concurrency)

    def dry_run(self, incident: Incident) -> bool:
        """The one place that says whether effects may change the world."""
        return self.configured_dry_run or incident.dry_run or self.nova is None

    def run(self, effect: Effect, facts: Facts) -> Outcome:
        handler = HANDLERS[type(effect)]  # a type without a handler is a bug: tests/test_executor.py
        if self.shadow and effect.mutates:
            return self._plan(effect)  # nothing changes; nothing to count
        started = time.monotonic()
        try:
            outcome = handler(self, effect, facts, self.dry_run(facts.incident))
        except NovaError as exc:
            outcome = Outcome(effect, error=str(exc), detail={"attempts": exc.attempts})
        metrics.effect_done(effect, outcome, time.monotonic() - started)
        return outcome

    def _plan(self, effect: Effect) -> Outcome:
        """Shadow mode: what this effect and those after it would do; Nova is only read."""
        would = {FenceRequest: ["fence", "force_down", "disable"], ForceDown: ["force_down", "disable"],
                 Disable: ["disable"]}.get(type(effect), [type(effect).__name__])
        plan = {"shadow": True, "host": effect.host, "would": would, "driver": getattr(effect, "method", None)}
        if self.nova is not None:
            try:  # a dry-run force-down reads the service and says whether the call would be needed
                plan["nova"] = self.nova.force_down(effect.host, dry_run=True).as_detail()
            except NovaError as exc:
                plan["nova_error"] = str(exc)
        steps = ", then ".join(f"fence it with driver {plan['driver']}" if w == "fence" else f"nova {w}"
                               for w in would)
        return Outcome(effect, f"shadow: would {steps} on {effect.host}", plan, shadow=True)

    # ---- handlers ------------------------------------------------------------------------

    def _fence_request(self, effect: FenceRequest, facts: Facts, dry_run: bool) -> Outcome:
        return self.fencing.request(effect, facts.incident, dry_run=dry_run)

    def _fence_check(self, effect: FenceCheck, facts: Facts, dry_run: bool) -> Outcome:
        return self.fencing.check(effect, facts.incident, facts.evidence, facts.now)

    def _nova(self, effect: Effect, call: Callable[[], CallRecord], request: dict) -> Outcome:
        if self.nova is None:  # no cloud at all is only ever dry-run (the config insists)
            record = CallRecord(call.__name__, effect.host, dry_run=True, request={"host": effect.host, **request})
        else:
            record = call()
        if record.skipped:
            note = f"nova {record.call}: skipped, {record.skipped}"
        elif record.dry_run:
            note = f"dry-run: would call nova {record.call}"
        else:
            note = f"nova {record.call} done in {record.seconds:.3f}s"
        return Outcome(effect, note, record.as_detail(), dry_run=record.dry_run)

    def _force_down(self, effect: ForceDown, facts: Facts, dry_run: bool) -> Outcome:
        def force_down():
            return self.nova.force_down(effect.host, dry_run=dry_run)
        return self._nova(effect, force_down, {"forced_down": True})

    def _disable(self, effect: Disable, facts: Facts, dry_run: bool) -> Outcome:
        def disable():
            return self.nova.disable(effect.host, effect.reason, dry_run=dry_run)
        return self._nova(effect, disable, {"status": "disabled", "disabled_reason": effect.reason})

    # ---- the host's servers (bridge.servers_run) ---------------------------------------------

    def _list_servers(self, effect: ListServers, facts: Facts, dry_run: bool) -> Outcome:
        if self.server_work is None:
            return Outcome(effect, "dry-run: no cloud, servers not listed", dry_run=True)
        rows = self.server_work.plan(effect.host, facts.policy.servers, facts.now, effect.rules)
        counts = sv.summary(rows)
        note = f"servers on {effect.host}: {len(rows)} listed; " + (
            ", ".join(f"{n} {k}" for k, n in counts.items()) or "none")
        return Outcome(effect, note, {"servers": counts}, dry_run=dry_run, servers=tuple(rows))

    def _rows(self, facts: Facts, ids: tuple[str, ...]) -> list[sv.ServerAction]:
        by_id = {r.server_id: r for r in facts.servers}
        return [by_id[i] for i in ids if i in by_id]

    def _issue_servers(self, effect: IssueServerRequests, facts: Facts, dry_run: bool) -> Outcome:
        rows = self._rows(facts, effect.servers)
        if dry_run or self.server_work is None:
            done = tuple(replace(r, status=sv.DONE, step=f"dry-run: would {r.action}") for r in rows)
            return Outcome(effect, f"dry-run: would ask Nova to {_count(done)}", dry_run=True, servers=done)
        changed = self.server_work.issue(facts.incident.host, rows, facts.policy.servers, _lock_reason(facts),
                                         facts.now)
        return Outcome(effect, f"servers: asked Nova to {_count(changed)}", {"servers": sv.summary(changed)},
                       servers=tuple(changed))

    def _poll_servers(self, effect: PollServers, facts: Facts, dry_run: bool) -> Outcome:
        rows = self._rows(facts, effect.servers)
        if dry_run or self.server_work is None:
            return Outcome(effect, None, dry_run=True, servers=tuple(replace(r, status=sv.DONE) for r in rows))
        changed = self.server_work.poll(facts.incident.host, rows, facts.policy.servers, _lock_reason(facts),
                                        facts.now)
        moved = [c for c, r in zip(changed, rows) if c != r]
        note = f"servers: {_count(moved)}" if moved else None  # an unchanged read-back records nothing
        return Outcome(effect, note, {"servers": sv.summary(moved)} if moved else {}, servers=tuple(moved))

    def _release_servers(self, effect: ReleaseServers, facts: Facts, dry_run: bool) -> Outcome:
        rows = self._rows(facts, effect.servers)
        if dry_run or self.server_work is None:
            released = tuple(replace(r, locked_by_bridge=False, detail={**r.detail, "released": "dry-run"})
                             for r in rows)
            return Outcome(effect, f"dry-run: would unlock what the bridge locked of {len(rows)} server(s)",
                           dry_run=True, servers=released)
        changed = self.server_work.release(rows, _lock_reason(facts))
        unlocked = [r.server_id for r in changed if r.detail.get("released") == "unlocked"]
        failed = [r.server_id for r in changed if "released" not in r.detail]
        note = f"servers: unlocked {len(unlocked)} the bridge had locked" + (
            f"; {len(failed)} could not be read or unlocked" if failed else "")
        return Outcome(effect, note, {"unlocked": unlocked, "failed": failed}, servers=tuple(changed))

    def _return_host(self, effect: ReturnHost, facts: Facts, dry_run: bool) -> Outcome:
        if self.nova is None:
            return Outcome(effect, "dry-run: would return the host to service", {"service": "returned"},
                           dry_run=True)
        try:
            service, record = self.nova.return_step(effect.host, enable=effect.enable, ours=effect.ours,
                                                    dry_run=dry_run)
        except NovaError as exc:
            if "evacuation" not in str(exc):
                raise
            # Nova keeps a host forced down while its evacuations are not cleaned up (compute restart);
            # said once on the timeline, at the first refusal of this wait
            ret, deadline = facts.policy.servers.returning, facts.incident.return_deadline
            first = deadline is None or facts.now < deadline - timedelta(seconds=ret.wait - ret.poll_interval)
            note = (f"Nova refuses to undo force-down until nova-compute on {effect.host} restarts: {exc}; "
                    f"asking again every {ret.poll_interval:g}s") if first else None
            return Outcome(effect, note, {"service": "forced_down", "waiting": str(exc)[:500]})
        detail = {"service": service, **(record.as_detail() if record else {})}
        if service == "down":
            detail["waiting"] = f"nova-compute on {effect.host} has not reported up yet"
        note = None if record is None else (f"dry-run: would call nova {record.call}" if record.dry_run
                                            else f"nova {record.call} done")
        if service == "returned" and record is None:
            note = "nova-compute service up" + ("" if effect.enable else ", left disabled (servers.return.enable)")
        return Outcome(effect, note, detail, dry_run=dry_run)


def _lock_reason(facts: Facts) -> str:
    return sv.lock_reason(facts.policy.reason_prefix, facts.incident.id, facts.incident.host)


def _count(rows) -> str:
    return ", ".join(f"{n} {k}" for k, n in sv.summary(rows).items()) or "nothing"


HANDLERS: dict[type[Effect], Callable[[Executor, Effect, Facts, bool], Outcome]] = {
    FenceRequest: Executor._fence_request,
    FenceCheck: Executor._fence_check,
    ForceDown: Executor._force_down,
    Disable: Executor._disable,
    ListServers: Executor._list_servers,
    IssueServerRequests: Executor._issue_servers,
    PollServers: Executor._poll_servers,
    ReturnHost: Executor._return_host,
    ReleaseServers: Executor._release_servers,
}
