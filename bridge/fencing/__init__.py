"""Fencing drivers: each asks for a host to be fenced; proof is recorded as evidence.

A driver's proof is a power-off read back or an explicit confirmation; a time-out or an
unreadable state is never proof.
"""

from __future__ import annotations

from bridge.fencing.manual import ManualFencing

DRIVERS = {"manual": ManualFencing}


def driver_for(config) -> ManualFencing:
    return DRIVERS[config["fencing"]["driver"]]()
