"""The incident state machine: pure decisions, no I/O.

decide(incident, world) says what the engine does next for one incident. Every safety
property (no Nova call without fencing proof, cancel only before fencing, hold on
timeout) is a property of this function and is tested without a database or a cloud.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

SUSPECTED = "suspected"
FENCING = "fencing"
FENCED = "fenced"
FORCED_DOWN = "forced_down"
NOVA_DOWN = "nova_down"
DONE = "done"
CANCELLED = "cancelled"
HELD = "held"
FAILED = "failed"
CLOSED = "closed"

TERMINAL = frozenset({CANCELLED, CLOSED})
WAITING_FOR_PERSON = frozenset({HELD, FAILED})
# before the host is fenced, a resolved alert may still call everything off
CANCELLABLE = frozenset({SUSPECTED, FENCING})
# these states need fencing proof for this incident, or the engine refuses to act
NEEDS_PROOF = frozenset({FENCED, FORCED_DOWN, NOVA_DOWN})

# effects the engine carries out before it records the transition
FENCE_REQUEST = "fencing.request"
FORCE_DOWN = "nova.force_down"
DISABLE = "nova.disable"


@dataclass(frozen=True)
class Incident:
    id: int
    host: str
    state: str
    dry_run: bool
    fence_deadline: datetime | None = None


@dataclass(frozen=True)
class Proof:
    evidence_id: int
    kind: str
    actor: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class World:
    now: datetime
    firing: int  # alerts of this incident still firing
    proof: Proof | None
    fencing_timeout: float
    on_timeout: str  # HELD | FAILED


@dataclass(frozen=True)
class Decision:
    to_state: str | None  # None: no transition, wait
    cause: str
    effect: str | None = None
    due_at: datetime | None = None  # when to look again; None waits for an event
    fence_deadline: datetime | None = None
    detail: dict = field(default_factory=dict)


def describe(proof: Proof) -> str:
    return f"{proof.kind} by {proof.actor}: {proof.reason}"


def decide(incident: Incident, world: World) -> Decision:
    state = incident.state
    if state in CANCELLABLE and world.firing == 0 and world.proof is None:
        return Decision(CANCELLED, "every alert resolved before the host was fenced")
    if state == SUSPECTED:
        deadline = world.now + timedelta(seconds=world.fencing_timeout)
        return Decision(FENCING, "host down: fencing requested", effect=FENCE_REQUEST, due_at=world.now,
                        fence_deadline=deadline)
    if state == FENCING:
        if world.proof is not None:
            return Decision(FENCED, f"fenced: {describe(world.proof)}", due_at=world.now,
                            detail={"evidence_id": world.proof.evidence_id})
        if incident.fence_deadline is not None and world.now >= incident.fence_deadline:
            return Decision(world.on_timeout,
                            f"no fencing proof within {world.fencing_timeout:g}s: Nova left untouched")
        return Decision(None, "waiting for fencing proof", due_at=incident.fence_deadline)
    if state in NEEDS_PROOF and world.proof is None:
        # Unreachable through the engine; kept as the last line of the safety rule.
        return Decision(HELD, "no fencing proof recorded for this incident: refusing to act")
    if state == FENCED:
        return Decision(FORCED_DOWN, "nova-compute service forced down", effect=FORCE_DOWN, due_at=world.now)
    if state == FORCED_DOWN:
        return Decision(NOVA_DOWN, "nova-compute service disabled", effect=DISABLE, due_at=world.now)
    if state == NOVA_DOWN:
        return Decision(DONE, "host out of service; servers policy: none")
    return Decision(None, f"{state}: nothing to do")


def disabled_reason(prefix: str, incident: Incident, proof: Proof) -> str:
    """Nova's disabled_reason: names the bridge and the incident; Nova takes 255 characters."""
    text = f"{prefix}: incident {incident.id}, host down and fenced ({proof.kind} by {proof.actor})"
    return text[:255]
