"""Fencing drivers behind one interface (bridge.fencing.base.FencingDriver).

DRIVERS find proof in evidence bound to the incident (a person's confirmation, a power-off
alert); POWER_DRIVERS switch power through a BMC or a cloud API (bridge.fencing.base.PowerDriver)
and are adapted by bridge.fencing.power. bridge.fencing.methods hands each effect to the
host's method it names.
"""

from __future__ import annotations

from bridge.fencing.alert import AlertFencing
from bridge.fencing.base import FencingDriver
from bridge.fencing.fence_agent import FenceAgentPower
from bridge.fencing.ipmi import IpmiPower
from bridge.fencing.ironic import IronicPower
from bridge.fencing.manual import ManualFencing
from bridge.fencing.redfish import RedfishPower

DRIVERS: dict[str, type] = {"manual": ManualFencing, "alert": AlertFencing}
POWER_DRIVERS: dict[str, type] = {cls.name: cls for cls in (RedfishPower, IpmiPower, FenceAgentPower, IronicPower)}


def driver_for(config, *, nova=None, wake=None) -> FencingDriver:
    """The fencing the engine runs: every host's methods, from config['fencing']."""
    from bridge.fencing.methods import build

    return build(config, nova=nova, wake=wake)
