"""The decision core: pure functions over a snapshot of the facts, no I/O.

decide(facts) says what happens next to one incident: a transition, or one typed effect
to carry out first (then decide() is asked again with its outcome). Every transition it
makes is in TRANSITIONS; every rule about what opens, joins, cancels, holds, resumes or
closes an incident is here, so each safety property is tested without a database or a cloud.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Mapping

from bridge import gates, servers as sv
from bridge.effects import (Disable, Effect, Evidence, FenceCheck, FenceRequest, ForceDown, IssueServerRequests,
                            ListServers, Outcome, PollServers, ReleaseServers, ReturnHost)

SUSPECTED = "suspected"
FENCING = "fencing"
FENCED = "fenced"
FORCED_DOWN = "forced_down"
NOVA_DOWN = "nova_down"
SERVERS = "servers"  # the host's servers handled by policy, each on its own row
OUT_OF_SERVICE = "out_of_service"
CANCELLED = "cancelled"
RETURNING = "returning"  # an operator returns the host to service
HELD = "held"
FAILED = "failed"
CLOSED = "closed"
CLOSING = "closing"  # a person closed it: the bridge unlocks the servers it locked, then it is closed

# The whole lifecycle: state -> the states decide() may move it to. README draws it.
TRANSITIONS: dict[str, frozenset[str]] = {
    SUSPECTED: frozenset({FENCING, CANCELLED, HELD, CLOSED}),
    # fencing -> fencing: the next attempt of a method, or the host's next method
    FENCING: frozenset({FENCING, FENCED, CANCELLED, HELD, FAILED, CLOSED}),
    FENCED: frozenset({FORCED_DOWN, HELD, CLOSED}),
    FORCED_DOWN: frozenset({NOVA_DOWN, HELD, CLOSED}),
    NOVA_DOWN: frozenset({SERVERS, OUT_OF_SERVICE, HELD, CLOSED}),
    SERVERS: frozenset({OUT_OF_SERVICE, HELD, CLOSED, CLOSING}),
    # the host stays out until a person returns it (or closes the incident)
    OUT_OF_SERVICE: frozenset({RETURNING, CLOSED, CLOSING}),
    RETURNING: frozenset({CLOSED, CLOSING, HELD}),
    # a person's retry resumes where it stopped (a fencing wait starts again)
    HELD: frozenset({SUSPECTED, FENCED, FORCED_DOWN, NOVA_DOWN, SERVERS, RETURNING, CANCELLED, CLOSED, CLOSING}),
    FAILED: frozenset({SUSPECTED, FENCED, FORCED_DOWN, NOVA_DOWN, SERVERS, RETURNING, CANCELLED, CLOSED, CLOSING}),
    CLOSING: frozenset({CLOSED, HELD}),
    CANCELLED: frozenset(),
    CLOSED: frozenset(),
}
STATES = tuple(TRANSITIONS)

TERMINAL = frozenset(s for s, to in TRANSITIONS.items() if not to)
WAITING_FOR_PERSON = frozenset({HELD, FAILED})
# before the host is fenced, a resolved alert may still call everything off
CANCELLABLE = frozenset({SUSPECTED, FENCING})
# these states are only reached with fencing proof for this incident
NEEDS_PROOF = frozenset({FENCED, FORCED_DOWN, NOVA_DOWN, SERVERS, OUT_OF_SERVICE, RETURNING})
# retry from here starts the step again; from a fencing wait, a fresh wait
RESUME = {FENCING: SUSPECTED}

RETRY = "retry"
CLOSE = "close"
APPROVE = "approve"  # release one gate for this incident (and retry, if held)
CANCEL = "cancel"  # call it off before the host is fenced
RETURN = "return"  # return an out-of-service host to service

MANUAL = "manual"  # a person confirms: the fencing method every host has when it has no other


@dataclass(frozen=True)
class Incident:
    id: int
    host: str
    state: str
    dry_run: bool
    fence_deadline: datetime | None = None  # the current fencing attempt's end
    resume_state: str | None = None
    proof_id: int | None = None
    # which of the host's fencing methods is being tried, and its attempt (from 0); in
    # FENCING, fence_deadline None means this attempt's power-off is not yet requested
    fence_method: int = 0
    fence_attempt: int = 0
    return_deadline: datetime | None = None  # RETURNING: when to stop waiting for Nova to take the host back


@dataclass(frozen=True)
class Method:
    """One way to fence a host, as decide() needs to know it: the driver's name, the seconds
    one attempt may take, and how many more attempts follow a failed one."""

    name: str
    timeout: float
    retries: int = 0


@dataclass(frozen=True)
class Signals:
    """The incident's alerts, each counted once by its latest status, per source."""

    firing: Mapping[str, int] = field(default_factory=dict)
    resolved: Mapping[str, int] = field(default_factory=dict)

    @property
    def firing_total(self) -> int:
        return sum(self.firing.values())


@dataclass(frozen=True)
class Policy:
    fencing_timeout: float = 300
    on_timeout: str = HELD  # HELD | FAILED
    reason_prefix: str = "nova-hostdown-bridge"
    gates: gates.Limits = gates.Limits()
    servers: sv.ServersPolicy = sv.ServersPolicy()


@dataclass(frozen=True)
class OperatorAction:
    kind: str  # RETRY | CLOSE | APPROVE | CANCEL
    actor: str
    reason: str
    gate: str | None = None  # APPROVE: the gate it releases


@dataclass(frozen=True)
class Facts:
    now: datetime
    incident: Incident
    signals: Signals = Signals()
    evidence: tuple[Evidence, ...] = ()  # everything bound to this incident
    proof: Evidence | None = None  # the evidence accepted as this incident's proof
    policy: Policy = Policy()
    action: OperatorAction | None = None  # a person asks for this now
    busy: bool = False  # a worker is in the middle of a step on this incident
    outcome: Outcome | None = None  # of the effect the last decision named
    servers: tuple[sv.ServerAction, ...] = ()  # the host's server rows (from servers on)
    plan: tuple[Method, ...] = ()  # the host's fencing methods, tried in order; () = manual only

    @property
    def methods(self) -> tuple[Method, ...]:
        return self.plan or (Method(MANUAL, self.policy.fencing_timeout),)

    # what the gates read (bridge/gating.py gathers them), and the gates approved for this incident
    fleet: gates.Fleet = gates.Fleet()
    host: gates.HostView = gates.HostView()
    approvals: frozenset[str] = frozenset()
    # the rules that mapped this incident's alerts; read when its servers are listed (nova_down)
    rules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    to_state: str | None  # None: no transition
    cause: str
    effect: Effect | None = None  # carry this out, then decide again with its outcome
    due_at: datetime | None = None  # when to look again; None waits for an event
    fence_deadline: datetime | None = None
    fence_step: tuple[int, int] | None = None  # (method, attempt) set with fence_deadline, even to None
    return_deadline: datetime | None = None  # a new wait for Nova to take the host back
    resume_state: str | None = None  # where a retry resumes (set on hold)
    last_error: str | None = None
    proof: Evidence | None = None  # becomes the incident's proof with this transition
    refused: str | None = None  # an operator action that cannot be done now
    detail: dict = field(default_factory=dict)

    @property
    def closes(self) -> bool:
        return self.to_state in TERMINAL


def describe(proof: Evidence) -> str:
    return f"{proof.kind} by {proof.actor}: {proof.reason}"


def disabled_reason(prefix: str, incident: Incident, proof: Evidence) -> str:
    """Nova's disabled_reason: names the bridge and the incident; Nova takes 255 characters."""
    text = f"{prefix}: incident {incident.id}, host down and fenced ({proof.kind} by {proof.actor})"
    return text[:255]


def _hold(facts: Facts, why: str, to_state: str = HELD, **detail) -> Decision:
    state = facts.incident.state
    return Decision(to_state, why, resume_state=state, last_error=why, detail=detail)


def _gated(facts: Facts, verdict: gates.Verdict) -> Decision:
    """A gate said no: wait when it only says "not yet", else hold, naming the gate."""
    if verdict.until is not None:
        return Decision(None, f"gate {verdict.gate}: {verdict.reason}", due_at=verdict.until,
                        detail={"gate": verdict.gate, "waiting": True})
    return _hold(facts, f"gate {verdict.gate}: {verdict.reason}", gate=verdict.gate)


def decide(facts: Facts) -> Decision:
    if facts.action is not None:
        return _operator(facts)
    inc = facts.incident
    state = inc.state
    if state in TERMINAL or state in WAITING_FOR_PERSON:
        return Decision(None, f"{state}: waiting for a person")
    if state == OUT_OF_SERVICE:
        return Decision(None, "out of service until an operator returns the host")
    if facts.outcome is not None:
        asked = decide(replace(facts, outcome=None)).effect
        if facts.outcome.effect != asked:  # not the outcome of this step's effect: it proves nothing
            return Decision(None, f"outcome of {type(facts.outcome.effect).__name__} ignored: not this step's",
                            due_at=facts.now)
        return _after(facts, facts.outcome)
    if state in CANCELLABLE and facts.signals.firing_total == 0 and facts.proof is None:
        return Decision(CANCELLED, "every alert resolved before the host was fenced")
    if state == SUSPECTED:  # fencing starts with the host's first method, whatever came before
        closed = gates.first_closed(facts, gates.BEFORE_FENCING)
        if closed is not None:
            return _gated(facts, closed)
        return Decision(None, "host down: fencing requested", effect=_fence(FenceRequest, facts, 0, 0))
    if state == FENCING:
        return _fencing(facts)
    if state == CLOSING:  # a person's close: no gate holds it
        release = sv.to_release(facts.servers)
        if release:
            return Decision(None, f"unlock the servers the bridge locked: {len(release)} to check",
                            effect=ReleaseServers(inc.host, release))
        return Decision(CLOSED, "closed: no server left locked by the bridge")
    closed = gates.first_closed(facts)
    if closed is not None:
        return _hold(facts, closed.reason, gate=closed.gate)
    if state == FENCED:
        return Decision(None, "force the nova-compute service down", effect=ForceDown(inc.host))
    if state == FORCED_DOWN:
        reason = disabled_reason(facts.policy.reason_prefix, inc, facts.proof)
        return Decision(None, "disable the nova-compute service", effect=Disable(inc.host, reason=reason))
    if state == NOVA_DOWN:
        return Decision(None, "list the host's servers", effect=ListServers(inc.host, rules=facts.rules))
    if state == SERVERS:
        return _servers(facts, facts.servers)
    if state == RETURNING:
        enable = facts.policy.servers.returning.enable
        return Decision(None, "return the host to service",
                        effect=ReturnHost(inc.host, enable=enable, ours=ours(facts.policy.reason_prefix, inc)))
    return Decision(None, f"{state}: nothing to do")


def ours(prefix: str, incident: Incident) -> str:
    """How the disabled_reason the bridge wrote for this incident starts."""
    return f"{prefix}: incident {incident.id},"


def _servers(facts: Facts, rows: tuple[sv.ServerAction, ...], to_state: str | None = None) -> Decision:
    """The servers step: ask Nova for the pending servers, read back the requested ones, or,
    once every row is final, leave the host out of service."""
    inc, policy = facts.incident, facts.policy.servers
    issue = sv.next_issue(rows, policy)
    if issue:
        if to_state is not None:
            return Decision(to_state, f"servers: {len(issue)} to ask Nova for", due_at=facts.now)
        return Decision(None, f"servers: ask Nova for {len(issue)}", effect=IssueServerRequests(inc.host, issue))
    waiting = sv.in_flight(rows)
    if waiting:
        if to_state is not None:
            return Decision(to_state, f"servers: {len(waiting)} in flight", due_at=facts.now)
        return Decision(None, f"servers: read back {len(waiting)}", effect=PollServers(inc.host, waiting))
    counts = sv.summary(rows)
    said = ", ".join(f"{n} {k}" for k, n in counts.items()) or "none on the host"
    failed = [r for r in rows if r.status == sv.FAILED]
    error = None
    if failed:
        error = f"{len(failed)} server(s) failed: " + "; ".join(f"{r.name or r.server_id}: {r.error}" for r in failed[:5])
    return Decision(OUT_OF_SERVICE, f"host out of service until an operator returns it; servers: {said}",
                    last_error=error, detail={"servers": counts})


# what each effect's success leads to
_DONE = {
    ForceDown: (FORCED_DOWN, "nova-compute service forced down"),
    Disable: (NOVA_DOWN, "nova-compute service disabled"),
}
SERVER_EFFECTS = (ListServers, IssueServerRequests, PollServers)


def _after(facts: Facts, outcome: Outcome) -> Decision:
    """The decision once the named effect has been carried out."""
    effect = outcome.effect
    if outcome.shadow:  # the executor ran it in shadow mode: the plan is recorded, nothing changed
        return _hold(facts, f"shadow mode, nothing done: {outcome.note}", gate="shadow", **outcome.detail)
    if isinstance(effect, (FenceRequest, FenceCheck)):
        return _after_fencing(facts, outcome)
    if outcome.error is not None:
        return _hold(facts, outcome.error, **outcome.detail)
    if isinstance(effect, SERVER_EFFECTS):
        return _after_servers(facts, outcome)
    if isinstance(effect, ReturnHost):
        return _after_return(facts, outcome)
    if isinstance(effect, ReleaseServers):
        left = sv.to_release(sv.merge(facts.servers, outcome.servers))
        if left:
            return _hold(facts, f"closing: {len(left)} server(s) the bridge locked could not be unlocked; "
                                "close again to retry", servers=list(left))
        return Decision(CLOSED, "closed: the servers the bridge locked are unlocked" +
                        (" (dry-run: Nova not called)" if outcome.dry_run else ""))
    to_state, cause = _DONE[type(effect)]  # decide() checked it is this step's effect, gates passed
    if outcome.dry_run and effect.mutates:
        cause += " (dry-run: Nova not called)" if effect.touches_nova else " (dry-run)"
    return Decision(to_state, cause, due_at=facts.now)


# ---- fencing: the host's methods in order, each with its own time-out and retries ----------

def _fence(effect_type, facts: Facts, method: int, attempt: int):
    return effect_type(facts.incident.host, method=facts.methods[method].name, index=method, attempt=attempt)


def _attempt_name(facts: Facts, method: int, attempt: int) -> str:
    m = facts.methods[method]
    return f"{m.name} (method {method + 1}/{len(facts.methods)}, attempt {attempt + 1}/{m.retries + 1})"


def _attempt_detail(facts: Facts, method: int, attempt: int, detail: dict, **more) -> dict:
    """What the timeline keeps of an attempt (bridge.fencing.audit lists them): the outcome's
    detail (target, never a secret; what was requested; times) and which attempt it was."""
    return {**detail, "driver": facts.methods[method].name, "method": method + 1, "attempt": attempt + 1, **more}


def _fencing(facts: Facts) -> Decision:
    inc = facts.incident
    if facts.proof is not None and gates.fencing_proof(facts).passed:
        return Decision(FENCED, f"fenced: {describe(facts.proof)}", due_at=facts.now, proof=facts.proof)
    if inc.fence_method >= len(facts.methods):  # the host's methods changed in the config meanwhile
        return _hold(facts, f"no fencing method {inc.fence_method + 1} for {inc.host} any more: Nova left untouched")
    if inc.fence_deadline is None:  # this attempt's power-off is not requested yet
        return Decision(None, "fencing: next attempt", effect=_fence(FenceRequest, facts, inc.fence_method,
                                                                      inc.fence_attempt))
    if facts.now >= inc.fence_deadline:
        method = facts.methods[inc.fence_method]
        return _attempt_failed(facts, inc.fence_method, inc.fence_attempt,
                               f"no fencing proof within {method.timeout:g}s", timed_out=True)
    return Decision(None, "waiting for fencing proof", effect=_fence(FenceCheck, facts, inc.fence_method,
                                                                     inc.fence_attempt),
                    due_at=inc.fence_deadline)


def _after_fencing(facts: Facts, outcome: Outcome) -> Decision:
    inc, effect = facts.incident, outcome.effect
    if inc.state != FENCING and isinstance(effect, FenceCheck):
        return Decision(None, "fencing check no longer needed", due_at=facts.now)
    if outcome.refused is not None:  # this method cannot fence this host: no use trying it again
        return _attempt_failed(facts, effect.index, effect.attempt, f"refused: {outcome.refused}",
                               detail=outcome.detail, whole_method=True)
    if outcome.error is not None:
        return _attempt_failed(facts, effect.index, effect.attempt, outcome.error, detail=outcome.detail)
    if isinstance(effect, FenceRequest):
        cause = f"fencing requested: {_attempt_name(facts, effect.index, effect.attempt)}"
        if outcome.dry_run:
            cause += " (dry-run)"
        deadline = facts.now + timedelta(seconds=facts.methods[effect.index].timeout)
        return Decision(FENCING, cause, due_at=facts.now, fence_deadline=deadline,
                        fence_step=(effect.index, effect.attempt),
                        detail=_attempt_detail(facts, effect.index, effect.attempt, outcome.detail,
                                               result="dry-run" if outcome.dry_run else "requested"))
    proof = outcome.proof
    if proof is not None and proof.host == inc.host and proof.incident_id in (None, inc.id):
        proof = Evidence(proof.id, inc.id, proof.host, proof.kind, proof.actor, proof.reason, proof.at,
                         proof.detail)
        return Decision(FENCED, f"fenced: {describe(proof)}", due_at=facts.now, proof=proof)
    recheck = [t for t in (outcome.recheck_at, inc.fence_deadline) if t is not None]
    return Decision(None, "waiting for fencing proof", due_at=min(recheck) if recheck else None)


def _attempt_failed(facts: Facts, method: int, attempt: int, why: str, *, detail: dict | None = None,
                    timed_out: bool = False, whole_method: bool = False) -> Decision:
    """This attempt failed: the method's next attempt, else the host's next method, else a
    person (on_timeout when the last attempt ran out of time, held otherwise)."""
    failed = f"{_attempt_name(facts, method, attempt)} failed: {why}"
    detail = _attempt_detail(facts, method, attempt, detail or {}, result="failed", error=why)
    if not whole_method and attempt < facts.methods[method].retries:
        step = (method, attempt + 1)
    elif method + 1 < len(facts.methods):
        step = (method + 1, 0)
    else:
        to_state = facts.policy.on_timeout if timed_out else HELD
        return _hold(facts, f"{why}: Nova left untouched (no fencing method left after "
                            f"{_attempt_name(facts, method, attempt)})", to_state=to_state, **detail)
    return Decision(FENCING, f"{failed}; next: {_attempt_name(facts, *step)}", due_at=facts.now,
                    fence_deadline=None, fence_step=step, last_error=failed, detail=detail)


def _after_servers(facts: Facts, outcome: Outcome) -> Decision:
    rows = sv.merge(facts.servers, outcome.servers)
    if isinstance(outcome.effect, ListServers):
        return _servers(facts, rows, to_state=SERVERS)
    decision = _servers(facts, rows)
    if decision.to_state is not None:
        return decision
    if isinstance(outcome.effect, PollServers) and not sv.next_issue(rows, facts.policy.servers):
        # nothing new to ask for: read them back again after a while
        return Decision(None, "servers: in flight", due_at=facts.now + timedelta(
            seconds=facts.policy.servers.poll_interval))
    return Decision(None, decision.cause, due_at=facts.now)


RETURN_HELD = ("Nova has not taken the host back within {wait:g}s: {why}. After an evacuation Nova refuses "
               "to undo force-down until nova-compute on the host has restarted (it then cleans up the "
               "evacuated servers); start it, then retry this incident")


def _after_return(facts: Facts, outcome: Outcome) -> Decision:
    now, inc, ret = facts.now, facts.incident, facts.policy.servers.returning
    service = outcome.detail.get("service")
    if service == "returned":
        return Decision(CLOSED, "host returned to service" + (" (dry-run: Nova not called)" if outcome.dry_run
                                                              else ""))
    if service == "forced_down_undone":
        return Decision(None, "force-down undone: waiting for the service to report up", due_at=now)
    why = outcome.detail.get("waiting", service or "no answer")
    if inc.return_deadline is not None and now >= inc.return_deadline:
        return _hold(facts, RETURN_HELD.format(wait=ret.wait, why=why))
    return Decision(None, f"returning: {why}", due_at=now + timedelta(seconds=ret.poll_interval))


def _operator(facts: Facts) -> Decision:
    inc, action = facts.incident, facts.action
    said = f"{action.kind}{f' gate {action.gate}' if action.gate else ''} by {action.actor}: {action.reason}"
    if facts.busy:  # its outcome (a Nova call, perhaps) is about to be recorded; act on what it leads to
        return Decision(None, said, refused=f"incident {inc.id} is in the middle of a step; try again in a moment")
    if action.kind == CLOSE:
        if inc.state in TERMINAL or inc.state == CLOSING:
            return Decision(None, said, refused=f"incident {inc.id} is already {inc.state}")
        if CLOSING in TRANSITIONS[inc.state] and sv.to_release(facts.servers):
            return Decision(CLOSING, said, due_at=facts.now)
        return Decision(CLOSED, said)
    if action.kind == CANCEL:
        if inc.state in TERMINAL or inc.proof_id is not None or CANCELLED not in TRANSITIONS[inc.state]:
            return Decision(None, said, refused=f"incident {inc.id} is {inc.state}"
                                                f"{' with fencing proof' if inc.proof_id else ''}; "
                                                "only one not yet fenced can be cancelled (close ends any)")
        return Decision(CANCELLED, said)
    if action.kind == APPROVE:
        if action.gate not in gates.APPROVABLE:
            return Decision(None, said, refused=f"gate {action.gate!r} cannot be approved; "
                                                f"one of: {', '.join(sorted(gates.APPROVABLE))}")
        if inc.state in TERMINAL:
            return Decision(None, said, refused=f"incident {inc.id} is already {inc.state}")
        if inc.state not in WAITING_FOR_PERSON:
            return Decision(None, said)  # recorded; it counts when the gate is next checked
    if action.kind == RETURN:
        if inc.state != OUT_OF_SERVICE:
            busy = sv.in_flight(facts.servers) + sv.next_issue(facts.servers, facts.policy.servers)
            why = f"{len(busy)} server(s) from {inc.host} still in flight" if busy else f"it is {inc.state}"
            return Decision(None, said, refused=f"incident {inc.id}: cannot return {inc.host} to service, "
                                                f"{why}; only an out_of_service host can be returned")
        return Decision(RETURNING, said, due_at=facts.now, return_deadline=_return_deadline(facts))
    if action.kind in (RETRY, APPROVE):
        if inc.state not in WAITING_FOR_PERSON:
            return Decision(None, said, refused=f"incident {inc.id} is {inc.state}; "
                                                "only held or failed ones can be retried")
        resume = RESUME.get(inc.resume_state, inc.resume_state)
        if resume not in TRANSITIONS[inc.state]:  # nothing sensible recorded: start again, fencing first
            resume = SUSPECTED
        if resume == RETURNING:  # a fresh wait for Nova to take the host back
            return Decision(resume, said, due_at=facts.now, return_deadline=_return_deadline(facts))
        return Decision(resume, said, due_at=facts.now)
    return Decision(None, said, refused=f"unknown action {action.kind!r}")


def _return_deadline(facts: Facts) -> datetime:
    return facts.now + timedelta(seconds=facts.policy.servers.returning.wait)


# ---- intake: which incident a stored signal belongs to -------------------------------------

OPEN = "open"  # a new incident for the host
JOIN = "join"  # the host's open incident, which it nudges
ATTACH = "attach"  # the host's out-of-service incident: shown there, never fences again
RECORD = "record"  # kept in the signal log only


@dataclass(frozen=True)
class Admission:
    action: str
    cause: str


def admit(kind_is_host_down: bool, firing: bool, host: str | None, open_incident: Incident | None,
          source: str, fingerprint: str, rule: str | None) -> Admission:
    """Where a taken-in firing signal goes. (A resolved one goes to its firing twin's incident.)"""
    if not kind_is_host_down or not firing or host is None:
        return Admission(RECORD, "recorded only")
    said = f"{source} {fingerprint} ({rule})"
    if open_incident is None:
        return Admission(OPEN, f"alert: {said} says {host} is down")
    if open_incident.state == OUT_OF_SERVICE:
        return Admission(ATTACH, f"alert attached: {said}; the host is already out of service")
    return Admission(JOIN, f"alert joined: {said}")


# A report that leaves the firing sources alone can only add a hold to a suspected incident that
# waits (a label a silence or a downtime matches, a flap counted; tests/test_decide_properties.py):
# it is looked at within this many seconds, not at once, so that a storm of alerts for a host
# waiting on min_duration costs a step per host every few seconds, not one per alert. Every step
# reads every committed signal: waiting longer never hides one.
JOIN_SETTLE = 5.0


def join_wakes(state: str, has_proof: bool, sources_before: frozenset[str],
               sources_after: frozenset[str]) -> float | None:
    """After a new report of one of an open incident's alerts (a join, a resolve, an older report
    taken in late), in how many seconds the engine must look at it again; None: decide() cannot
    say anything else. `sources_*`: the sources with an alert firing, before and after.

    - Suspected: a change in which sources fire can satisfy corroboration or cancel it: at once.
      Any other report may add a hold (its labels, a flap): within JOIN_SETTLE.
    - Cancellable without proof: cancelled once no alert fires: at once when that flips.
    - Anything else: no decision reads the alerts."""
    if state == SUSPECTED:
        if sources_before != sources_after:
            return 0.0
        return JOIN_SETTLE
    if state not in CANCELLABLE or has_proof:
        return None
    return 0.0 if (not sources_before) != (not sources_after) else None


def early_confirmation_counts(given_at: datetime, expires_at: datetime, now: datetime,
                              host_last_closed: datetime | None) -> bool:
    """A confirmation given while no incident was open counts for the host's next incident only,
    within its window, and never once an incident of that host has ended since it was given."""
    if now >= expires_at:
        return False
    return host_last_closed is None or host_last_closed < given_at
