"""Safety gates checked by the engine before it acts. Pure functions."""

from __future__ import annotations

from bridge.incidents import Incident, Proof


class GateClosed(RuntimeError):
    """The engine must not act; the incident is held with this message."""


def require_fencing_proof(incident: Incident, proof: Proof | None) -> None:
    """The rule that never breaks: no force-down, no evacuation, without fencing proof
    for that host, in that incident."""
    if proof is None:
        raise GateClosed(f"no fencing proof for {incident.host} in incident {incident.id}: refusing to touch Nova")
