"""Fencing drivers behind one interface (bridge.fencing.base.FencingDriver)."""

from __future__ import annotations

from bridge.fencing.base import FencingDriver
from bridge.fencing.manual import ManualFencing

DRIVERS: dict[str, type] = {"manual": ManualFencing}


def driver_for(config) -> FencingDriver:
    return DRIVERS[config["fencing"]["driver"]]()
