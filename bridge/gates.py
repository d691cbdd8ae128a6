"""Safety gates: pure verdicts that decide() composes before it names an effect. None raises.

Each gate returns a Verdict with its name and a reason; decide() holds the incident on the
first gate that does not pass. Fail-closed: a gate that cannot tell says no.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.incidents import Facts


@dataclass(frozen=True)
class Verdict:
    gate: str
    passed: bool
    reason: str


def fencing_proof(facts: Facts) -> Verdict:
    """The rule that never breaks: no force-down, no evacuation, without fencing proof for that
    host, in that incident."""
    inc, proof = facts.incident, facts.proof
    if proof is None:
        return Verdict("fencing_proof", False,
                       f"no fencing proof for {inc.host} in incident {inc.id}: refusing to touch Nova")
    if proof.incident_id != inc.id or proof.host != inc.host or proof.id is None:
        return Verdict("fencing_proof", False,
                       f"evidence {proof.id} belongs to incident {proof.incident_id} ({proof.host}), "
                       f"not to incident {inc.id} ({inc.host}): refusing to touch Nova")
    return Verdict("fencing_proof", True, f"fenced: {proof.kind} by {proof.actor}")


# checked, in order, before every effect that touches Nova
BEFORE_NOVA = (fencing_proof,)


def first_closed(facts: Facts, gates=BEFORE_NOVA) -> Verdict | None:
    for gate in gates:
        verdict = gate(facts)
        if not verdict.passed:
            return verdict
    return None
