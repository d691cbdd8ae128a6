"""Alert fencing: the monitoring system fenced the host, and says so with an alert.

A rule with `proves_fenced: true` (the shipped ComputeNodePoweredOff BMC rule, a Zabbix IPMI
item, a Nagios check) stores each firing alert it maps to a host as evidence of kind "alert",
bound to the host's open incident by the same path as a person's confirmation; check()
accepts it as proof. The operator opts in per rule; sources never call Nova.
"""

from __future__ import annotations

from bridge.effects import FenceRequest, Outcome
from bridge.fencing.manual import ManualFencing
from bridge.incidents import Incident


class AlertFencing(ManualFencing):
    name = "alert"

    def request(self, effect: FenceRequest, incident: Incident, *, dry_run: bool) -> Outcome:
        # the monitoring system switches the power: nothing to do here, in dry-run or not
        return Outcome(effect, f"waiting for a power-off alert for {incident.host} (a rule with proves_fenced)")
