"""The fencing the executor holds: each effect goes to the host's method it names.

Evidence that a person or an alert gave (kinds manual and alert) counts whichever method is
being tried: a confirmation given while a BMC is still being asked ends the wait at once.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable

from bridge.effects import Evidence, FenceCheck, FenceRequest, Outcome
from bridge.fencing.base import FencingDriver
from bridge.fencing.power import CallPool, PowerFencing
from bridge.incidents import Incident, Method
from bridge.targets import Targets

log = logging.getLogger(__name__)


class Fencing:
    name = "fencing"

    def __init__(self, targets: Targets, drivers: dict[str, FencingDriver], pool: CallPool | None = None):
        self.targets = targets
        self.drivers = drivers
        self.pool = pool
        self.passive = [driver for name, driver in drivers.items() if name in ("manual", "alert")]

    def plan(self, host: str) -> tuple[Method, ...]:
        return self.targets.plan(host)

    def _driver(self, effect) -> FencingDriver | None:
        return self.drivers.get(effect.method)

    def request(self, effect: FenceRequest, incident: Incident, *, dry_run: bool) -> Outcome:
        driver = self._driver(effect)
        if driver is None:
            return Outcome(effect, refused=f"fencing driver {effect.method!r} is not available")
        return driver.request(effect, incident, dry_run=dry_run)

    def settled(self, effect: FenceCheck, facts) -> bool:
        """Whether evidence already given (a person's, an alert's) settles this check: check()
        then finds it without asking any BMC."""
        return any(passive.check(effect, facts.incident, facts.evidence, facts.now).proof is not None
                   for passive in self.passive)

    def check(self, effect: FenceCheck, incident: Incident, evidence: tuple[Evidence, ...],
              now: datetime) -> Outcome:
        for passive in self.passive:
            found = passive.check(effect, incident, evidence, now)
            if found.proof is not None:
                return found
        driver = self._driver(effect)
        if driver is None:
            return Outcome(effect, refused=f"fencing driver {effect.method!r} is not available")
        if driver in self.passive:
            return Outcome(effect)  # pending: found nothing above
        return driver.check(effect, incident, evidence, now)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def build(config, *, nova=None, wake: Callable[[int], None] | None = None,
          power_drivers: dict | None = None) -> Fencing:
    from bridge.fencing import DRIVERS, POWER_DRIVERS

    fencing = config["fencing"]
    node_of = getattr(nova, "hypervisor_hostname", None)
    targets = Targets(fencing, node_of=node_of)
    drivers: dict[str, FencingDriver] = {name: cls() for name, cls in DRIVERS.items()}
    pool = CallPool(fencing["concurrency"], fencing["step_wait"], on_late=wake)
    for name, cls in (POWER_DRIVERS if power_drivers is None else power_drivers).items():
        drivers[name] = PowerFencing(cls(), targets, pool, fencing["poll_interval"])
    return Fencing(targets, drivers, pool)
