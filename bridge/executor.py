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
from typing import Callable

from bridge import metrics
from bridge.effects import Disable, Effect, FenceCheck, FenceRequest, ForceDown, Outcome
from bridge.fencing import FencingDriver
from bridge.incidents import Facts, Incident
from bridge.nova import CallRecord, Nova, NovaError


class Executor:
    def __init__(self, *, dry_run: bool, nova: Nova | None, fencing: FencingDriver, shadow: bool = False):
        self.configured_dry_run = dry_run
        self.nova = nova
        self.fencing = fencing
        self.shadow = shadow

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


HANDLERS: dict[type[Effect], Callable[[Executor, Effect, Facts, bool], Outcome]] = {
    FenceRequest: Executor._fence_request,
    FenceCheck: Executor._fence_check,
    ForceDown: Executor._force_down,
    Disable: Executor._disable,
}
