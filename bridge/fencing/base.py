"""The fencing-driver interface: request fencing of a host, then check for proof.

check() answers with an Outcome carrying exactly one of: proof (Evidence whose kind is the
driver's name), refused (why this driver cannot fence the host), or neither: pending,
with when to look again. Only a power state read back as off, or a person's explicit
confirmation, is proof; a time-out or an unreadable state is pending at best.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from bridge.effects import Evidence, FenceCheck, FenceRequest, Outcome
from bridge.incidents import Incident


class FencingDriver(Protocol):
    name: str

    def request(self, effect: FenceRequest, incident: Incident, *, dry_run: bool) -> Outcome:
        """Start fencing the host. In dry-run, change nothing and say what would be done."""

    def check(self, effect: FenceCheck, incident: Incident, evidence: tuple[Evidence, ...],
              now: datetime) -> Outcome:
        """Proof, refused, or pending. Never changes anything."""
