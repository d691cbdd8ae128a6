"""The fencing-driver interface: request fencing of a host, then check for proof.

check() answers with an Outcome carrying exactly one of: proof (Evidence whose kind is the
driver's name), refused (why this driver cannot fence the host), or neither: pending,
with when to look again. Only a power state read back as off, or a person's explicit
confirmation, is proof; a time-out or an unreadable state is pending at best.

Drivers that switch power through a BMC or a cloud API (redfish, ipmi, fence_agent, ironic)
implement the smaller PowerDriver: power_off() and power_state() for one FenceTarget. One
adapter turns a PowerDriver into a FencingDriver, so proof is always a read-back of "off".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, Protocol

from bridge.effects import Evidence, FenceCheck, FenceRequest, Outcome
from bridge.incidents import Incident

# power_state() answers one of these; only OFF is ever proof
OFF = "off"
ON = "on"
UNKNOWN = "unknown"


class FenceError(Exception):
    """A BMC or API call failed: unreachable, refused credentials, a time-out, a bad answer.
    The message names the target (never a secret) and what failed."""


class Secret:
    """A credential read from {file:} or {env:}; never printed, logged or serialised."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True)
class FenceTarget:
    """How to fence one compute host with one method: where its BMC is and how to log in."""

    host: str
    method: str  # a driver name: redfish, ipmi, fence_agent, ironic, alert, manual
    address: str | None = None  # BMC URL (redfish), host[:port] (ipmi); None when the driver needs none
    username: str | None = None
    password: Secret | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # per driver: verify, ca_bundle, agent, node, ...
    timeout: float = 30.0  # seconds one attempt (power off + read back off) may take
    retries: int = 2  # further attempts after a failed one, before the next method

    def public(self) -> dict[str, Any]:
        """What evidence and the API may show: everything except the secret."""
        return {"host": self.host, "method": self.method, "address": self.address,
                "username": self.username, "options": dict(self.options)}


class PowerDriver(Protocol):
    name: str

    def power_off(self, target: FenceTarget) -> None:
        """Ask for a hard power off (ForceOff, chassis off). Harmless when already off.
        Raises FenceError. Returns without waiting for the host to be off."""

    def power_state(self, target: FenceTarget) -> str:
        """Read the power state back: OFF, ON or UNKNOWN. Raises FenceError. Changes nothing."""


class FencingDriver(Protocol):
    name: str

    def request(self, effect: FenceRequest, incident: Incident, *, dry_run: bool) -> Outcome:
        """Start fencing the host. In dry-run, change nothing and say what would be done."""

    def check(self, effect: FenceCheck, incident: Incident, evidence: tuple[Evidence, ...],
              now: datetime) -> Outcome:
        """Proof, refused, or pending. Never changes anything."""
