"""Fencing drivers behind one interface (bridge.fencing.base.FencingDriver)."""

from __future__ import annotations

from bridge.fencing.base import FencingDriver
from bridge.fencing.fence_agent import FenceAgentPower
from bridge.fencing.ipmi import IpmiPower
from bridge.fencing.ironic import IronicPower
from bridge.fencing.manual import ManualFencing
from bridge.fencing.redfish import RedfishPower

DRIVERS: dict[str, type] = {"manual": ManualFencing}
# drivers that switch power through a BMC or a cloud API (bridge.fencing.base.PowerDriver)
POWER_DRIVERS: dict[str, type] = {cls.name: cls for cls in (RedfishPower, IpmiPower, FenceAgentPower, IronicPower)}


def driver_for(config) -> FencingDriver:
    return DRIVERS[config["fencing"]["driver"]]()
