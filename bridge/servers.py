"""The failed host's servers: which policy each gets, and what each one's next step is. Pure.

After the host is forced down and disabled, its servers are listed once; `plan()` gives each
one a row (a ServerAction): the action its policy says (evacuate, error, none) or `skip` for
the vm_states nobody may touch. Each row then moves on its own, as Masakari's per-instance
tasks do: pending -> requested -> done, or failed with Nova's error. Rows are stored per server
(bridge/store/server_actions.py) and shown with the incident. The calls that move them are in
bridge/servers_run.py; this module only decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Iterable, Mapping

# policies (globally, per host group, per server by metadata)
NONE = "none"  # force-down only: verify Nova shows host_status DOWN
ERROR = "error"  # reset-state to error, as Doctor does
EVACUATE = "evacuate"
POLICIES = (NONE, ERROR, EVACUATE)
SKIP = "skip"  # a row's action for a server no policy may touch

# a row's status
PENDING = "pending"
REQUESTED = "requested"
DONE = "done"
FAILED = "failed"
SKIPPED = "skipped"
FINAL = frozenset({DONE, FAILED, SKIPPED})
STATUSES = (PENDING, REQUESTED, DONE, FAILED, SKIPPED)

# the spec: these are never touched
PROTECTED_VM_STATES = frozenset({"soft-delete", "soft-deleted", "deleted", "resized", "error"})
# Nova evacuates only servers in these states (with no task in flight)
EVACUABLE = frozenset({"active", "stopped", "error"})


@dataclass(frozen=True)
class Group:
    """Servers on hosts of this group get `policy` (and evacuate to `target_hosts`)."""

    policy: str
    aggregate: str | None = None
    zone: str | None = None
    hosts: str | None = None  # a regular expression, anchored, over the host name
    target_hosts: tuple[str, ...] | None = None
    rule: str | None = None  # the name of a rule that mapped one of the incident's alerts

    def matches(self, host: str, zone: str | None, aggregates: Iterable[str], rules: Iterable[str] = ()) -> bool:
        if self.aggregate is not None and self.aggregate not in aggregates:
            return False
        if self.rule is not None and self.rule not in rules:
            return False
        if self.zone is not None and self.zone != zone:
            return False
        return self.hosts is None or re.fullmatch(self.hosts, host) is not None


@dataclass(frozen=True)
class OptIn:
    """Which servers the evacuate policy moves: any one of these is enough."""

    metadata: Mapping[str, str] = field(default_factory=lambda: {"HA_Enabled": "True"})
    flavor_extra_specs: Mapping[str, str] = field(default_factory=dict)
    image_properties: Mapping[str, str] = field(default_factory=dict)
    aggregates: tuple[str, ...] = ()  # the failed host is in one of these
    all: bool = False


@dataclass(frozen=True)
class ReturnPolicy:
    enable: bool = True  # enable the service once it reports up (False: leave it disabled)
    wait: float = 900  # how long to wait for Nova to take the host back, then hold
    poll_interval: float = 5


@dataclass(frozen=True)
class ServersPolicy:
    policy: str = NONE
    groups: tuple[Group, ...] = ()
    policy_key: str = "hostdown_policy"  # server metadata overriding the policy
    opt_in: OptIn = OptIn()
    priority_key: str = "HA_Priority"  # server metadata: higher goes first
    others: str = NONE  # evacuate policy, servers that did not opt in: none or error
    task_in_flight: str = "act"  # act: reset-state first, then the policy; skip: record only
    target_hosts: tuple[str, ...] = ()  # reserved hosts; empty: Nova's scheduler picks
    concurrency: int = 10  # Nova requests at once
    max_in_flight: int = 100  # evacuations in progress at once
    attempts: int = 2  # evacuations per server before it is reported failed
    poll_interval: float = 2
    settle_timeout: float = 600  # a requested server not settled by then is failed
    lock: bool = True  # lock each server while it is evacuated
    page_size: int = 200
    returning: ReturnPolicy = ReturnPolicy()

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> "ServersPolicy":
        if not cfg:
            return cls()
        opt = cfg.get("opt_in", {})
        ret = cfg.get("return", {})
        groups = tuple(Group(g["policy"], g.get("aggregate"), g.get("zone"), g.get("hosts"),
                             tuple(g["target_hosts"]) if "target_hosts" in g else None, g.get("rule"))
                       for g in cfg.get("groups", ()))
        simple = {k: cfg[k] for k in ("policy", "policy_key", "priority_key", "others", "task_in_flight",
                                      "concurrency", "max_in_flight", "attempts", "poll_interval",
                                      "settle_timeout", "lock", "page_size") if k in cfg}
        return cls(groups=groups, target_hosts=tuple(cfg.get("target_hosts", ())),
                   opt_in=OptIn(dict(opt.get("metadata", {})), dict(opt.get("flavor_extra_specs", {})),
                                 dict(opt.get("image_properties", {})), tuple(opt.get("aggregates", ())),
                                 bool(opt.get("all", False))),
                   returning=ReturnPolicy(**ret), **simple)


@dataclass(frozen=True)
class ServerAction:
    """One server's row: what the bridge does to it and how far it got."""

    server_id: str
    name: str = ""
    action: str = NONE  # evacuate | error | none | skip
    status: str = PENDING
    step: str = "listed"  # the named task last carried out (lock, evacuate, stop, unlock, reset_state, verify)
    priority: int = 0
    vm_state: str | None = None  # as listed (the state it must come back to)
    task_state: str | None = None  # as listed
    user_locked: bool = False  # locked by someone else: never unlocked by the bridge
    locked_by_bridge: bool = False
    target_host: str | None = None
    result_host: str | None = None
    attempts: int = 0  # evacuations issued
    error: str | None = None
    listed_at: datetime | None = None
    detail: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def final(self) -> bool:
        return self.status in FINAL


@dataclass(frozen=True)
class Found:
    """A server as Nova lists it (openstacksdk's Server, reduced to what a policy reads)."""

    id: str
    name: str
    vm_state: str | None
    task_state: str | None
    host: str | None = None
    locked: bool = False
    locked_reason: str | None = None
    host_status: str | None = None
    metadata: Mapping[str, str] = field(default_factory=lambda: {"HA_Enabled": "True"})
    flavor_extra_specs: Mapping[str, str] = field(default_factory=dict)
    image_id: str | None = None
    fault: str | None = None


@dataclass(frozen=True)
class HostFacts:
    """What plan() needs to know of the failed host."""

    host: str
    zone: str | None = None
    aggregates: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()  # the rules that mapped the incident's alerts


def lock_reason(prefix: str, incident_id: int, host: str) -> str:
    return f"{prefix}: incident {incident_id}, evacuating from {host}"[:255]


def host_policy(policy: ServersPolicy, facts: HostFacts) -> tuple[str, tuple[str, ...]]:
    """The host's policy and target hosts: its first matching group, else the global ones."""
    for group in policy.groups:
        if group.matches(facts.host, facts.zone, facts.aggregates, facts.rules):
            targets = policy.target_hosts if group.target_hosts is None else group.target_hosts
            return group.policy, targets
    return policy.policy, policy.target_hosts


def _subset(want: Mapping[str, str], have: Mapping[str, Any]) -> bool:
    return bool(want) and all(str(have.get(k)) == v for k, v in want.items())


def opted_in(opt: OptIn, server: Found, host: HostFacts, image_properties: Mapping[str, Any]) -> str | None:
    """Why the server opted in to evacuation, or None."""
    if opt.all:
        return "all servers"
    if _subset(opt.metadata, server.metadata):
        return "metadata " + ", ".join(f"{k}={v}" for k, v in opt.metadata.items())
    if _subset(opt.flavor_extra_specs, server.flavor_extra_specs):
        return "flavor extra specs"
    if _subset(opt.image_properties, image_properties):
        return "image properties"
    if set(opt.aggregates) & set(host.aggregates):
        return "host aggregate"
    return None


def plan(policy: ServersPolicy, host: HostFacts, servers: Iterable[Found], now: datetime,
         image_properties: Mapping[str, Mapping[str, Any]] | None = None) -> list[ServerAction]:
    """A row per server on the failed host, highest priority first."""
    default, targets = host_policy(policy, host)
    rows = []
    for s in servers:
        detail: dict[str, Any] = {"host_policy": default}
        chosen, why = default, "host policy"
        override = s.metadata.get(policy.policy_key)
        if override is not None:
            if override in POLICIES:
                chosen, why = override, f"metadata {policy.policy_key}"
            else:
                detail["ignored"] = f"metadata {policy.policy_key}={override!r} is not one of {', '.join(POLICIES)}"
        try:
            priority = int(s.metadata.get(policy.priority_key, 0))
        except ValueError:
            priority = 0
            detail["ignored_priority"] = s.metadata.get(policy.priority_key)
        if chosen == EVACUATE and why == "host policy":
            reason = opted_in(policy.opt_in, s, host, (image_properties or {}).get(s.image_id or "", {}))
            if reason is None:
                chosen, why = policy.others, "not opted in to evacuation"
            else:
                why = f"opted in: {reason}"
        row = ServerAction(s.id, s.name, chosen, PENDING, "listed", priority, s.vm_state, s.task_state,
                           user_locked=s.locked, listed_at=now, detail=detail)
        if s.task_state is not None:
            detail["task_in_flight"] = s.task_state
        if (s.vm_state or "") in PROTECTED_VM_STATES:
            row = replace(row, action=SKIP, status=SKIPPED, error=None)
            why = f"vm_state {s.vm_state}: never touched"
        elif s.task_state is not None and policy.task_in_flight == "skip":
            row = replace(row, action=SKIP, status=SKIPPED)
            why = f"task {s.task_state} in flight: recorded, left alone (task_in_flight: skip)"
        elif chosen == NONE:
            row = verified(row, s.host_status)
        elif chosen == EVACUATE and (s.vm_state or "") not in EVACUABLE:
            row = replace(row, status=FAILED, error=f"vm_state {s.vm_state}: Nova cannot evacuate it")
        detail["why"] = why
        rows.append(row)
    rows.sort(key=lambda r: (-r.priority, r.name, r.server_id))
    if targets:
        n = 0
        for i, row in enumerate(rows):
            if row.action == EVACUATE:
                rows[i] = replace(row, target_host=targets[n % len(targets)])
                n += 1
    return rows


def verified(row: ServerAction, host_status: str | None) -> ServerAction:
    """Policy none: the row is done once Nova shows the host's fault on the server (2.16)."""
    detail = {**row.detail, "host_status": host_status}
    if host_status in ("DOWN", "UNKNOWN"):
        return replace(row, status=DONE, step="verify", detail=detail)
    return replace(row, status=FAILED, step="verify", detail=detail,
                   error=f"Nova shows host_status {host_status!r} for it, not DOWN")


# servers per batch, per parallel request: a batch is one step under one lease, and a few rounds
# of requests per batch keep it well inside the lease (a replayed batch reads Nova first anyway)
ROUNDS_PER_BATCH = 4


def next_issue(rows: Iterable[ServerAction], policy: ServersPolicy) -> tuple[str, ...]:
    """The pending servers to ask Nova for now: by priority, within the in-flight bound, at
    most ROUNDS_PER_BATCH rounds of `concurrency` requests."""
    rows = list(rows)
    in_flight = sum(1 for r in rows if r.status == REQUESTED and r.action == EVACUATE)
    room = max(0, policy.max_in_flight - in_flight)
    out = []
    for r in rows:  # rows keep plan()'s priority order
        if r.status != PENDING:
            continue
        if r.action == EVACUATE:
            if room == 0:
                continue
            room -= 1
        out.append(r.server_id)
        if len(out) == policy.concurrency * ROUNDS_PER_BATCH:
            break
    return tuple(out)


def in_flight(rows: Iterable[ServerAction]) -> tuple[str, ...]:
    return tuple(r.server_id for r in rows if r.status == REQUESTED)


def to_release(rows: Iterable[ServerAction]) -> tuple[str, ...]:
    """When a person closes the incident: the servers whose lock may be the bridge's. The rows it
    locked, and the evacuations not finished (a lock taken just before a crash is on no row);
    each is read first and unlocked only if its lock reason is the bridge's. A row once checked
    (detail "released") is not asked again; one whose check failed (Nova's error) is."""
    return tuple(r.server_id for r in rows if "released" not in r.detail and not r.user_locked and (
        r.locked_by_bridge or (r.action == EVACUATE and r.status in (PENDING, REQUESTED))))


def summary(rows: Iterable[ServerAction]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        key = f"{r.action} {r.status}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def merge(rows: Iterable[ServerAction], changed: Iterable[ServerAction]) -> tuple[ServerAction, ...]:
    """Rows with `changed` ones replacing theirs (new ones appended), plan order kept."""
    by_id = {r.server_id: r for r in rows}
    for r in changed:
        by_id[r.server_id] = r
    return tuple(sorted(by_id.values(), key=lambda r: (-r.priority, r.name, r.server_id)))


# ---- a requested server, as Nova shows it now -------------------------------------------

STOP = "stop"  # the server was stopped: stop it again at its target
UNLOCK = "unlock"  # the bridge locked it: unlock it
GOOD_MIGRATION = frozenset({"accepted", "pre-migrating", "migrating", "done", "completed", "running"})


def tries(row: ServerAction) -> int:
    """Evacuations issued, and requests Nova refused, for this server so far."""
    return row.attempts + row.detail.get("refusals", 0)


# an evacuation Nova is still carrying out (conductor, scheduler, the target's nova-compute)
UNDERWAY = frozenset({"accepted", "pre-migrating", "migrating", "running"})


def underway(row: ServerAction, migrations: list[Mapping[str, Any]], now: datetime, policy: ServersPolicy) -> bool:
    """The row's latest evacuation is still being carried out, and not yet late: nothing to read."""
    if not migrations or migrations[-1].get("status") not in UNDERWAY:
        return False
    requested_at = row.detail.get("requested_at")
    return not (requested_at and (now - datetime.fromisoformat(requested_at)).total_seconds() > policy.settle_timeout)


def issued_already(row: ServerAction, migrations: list[Mapping[str, Any]]) -> bool:
    """Nova holds more evacuations of this server (since it was listed) than the row knows of:
    one was issued before a crash. Never issue another on top of it."""
    return len(migrations) > row.attempts


def settle(row: ServerAction, server: Found | None, migrations: list[Mapping[str, Any]], failed_host: str,
           now: datetime, policy: ServersPolicy, reason: str) -> tuple[ServerAction, str | None]:
    """A requested evacuation's row once Nova's view is read, and the follow-up call it needs
    (STOP, UNLOCK or None). `reason` is the bridge's lock reason: a lock with it is the bridge's
    own, even if the row never heard of it (taken just before a crash)."""
    if server is None:
        return replace(row, status=SKIPPED, step="gone", error="the server no longer exists"), None
    if server.locked and server.locked_reason == reason and not row.locked_by_bridge:
        row = replace(row, locked_by_bridge=True)
    latest = migrations[-1] if migrations else None
    moved = server.host is not None and server.host != failed_host
    broken = (latest is not None and latest.get("status") not in GOOD_MIGRATION) or \
        (moved and server.task_state is None and server.vm_state == "error")
    if broken:
        error = server.fault or f"evacuation {latest.get('status') if latest else 'failed'} (migration " \
                                f"{latest.get('id') if latest else '?'})"
        if tries(row) < policy.attempts:
            retried = replace(row, status=PENDING, step="evacuate", error=error)
            return retried, None
        row = replace(row, status=FAILED, error=error, result_host=server.host)
        return row, (UNLOCK if row.locked_by_bridge else None)
    if moved and server.task_state is None:
        want = "stopped" if row.vm_state == "stopped" else "active"
        if server.vm_state == want:
            row = replace(row, result_host=server.host, error=None)
            if row.locked_by_bridge:
                return row, UNLOCK
            return replace(row, status=DONE), None
        if server.vm_state == "active" and want == "stopped" and not row.detail.get("stop_issued"):
            return replace(row, result_host=server.host), STOP
    requested_at = row.detail.get("requested_at")
    if requested_at and (now - datetime.fromisoformat(requested_at)).total_seconds() > policy.settle_timeout:
        row = replace(row, status=FAILED, error=f"not settled within {policy.settle_timeout:g}s "
                                                 f"(vm_state {server.vm_state}, task {server.task_state}, "
                                                 f"host {server.host})")
        return row, (UNLOCK if row.locked_by_bridge else None)
    return row, None
