"""Safety gates: pure verdicts that decide() composes before it names an effect. None raises.

Each gate returns a Verdict with its name and a reason; decide() holds the incident on the
first gate that does not pass (a verdict with `until` only makes it wait: a debounce, a rate).
BEFORE_FENCING is checked before fencing starts, BEFORE_NOVA before every Nova effect. Each
gate says in its docstring whether it fails closed (it cannot tell: no) or open (it cannot
tell: yes); README's table lists them. A person may approve a gate for one incident
(`Facts.approvals`): that gate, and only that one, then passes for that incident.

What the gates read comes in Facts, gathered by the engine (bridge/gating.py) before decide():
the `Fleet` (one view for every incident a round steps) and the `HostView` (this incident's
host), under the `Limits` the configuration sets (`gates:`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from bridge.incidents import Facts


@dataclass(frozen=True)
class Verdict:
    gate: str
    passed: bool
    reason: str
    until: datetime | None = None  # not passed, but only "not yet": look again then, no hold


@dataclass(frozen=True)
class Matcher:
    """One matcher of an Alertmanager silence."""

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.name, "")
        hit = re.fullmatch(self.value, got) is not None if self.is_regex else got == self.value
        return hit == self.is_equal


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    created_by: str = ""
    comment: str = ""

    def silences(self, labels: Mapping[str, str]) -> bool:
        return bool(self.matchers) and all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True)
class Fleet:
    """The whole fleet as the bridge sees it now. Defaults: nothing known, nothing down."""

    hosts: int | None = None  # compute hosts Nova lists; None: no cloud, or not read yet
    down: int = 0  # hosts with an open incident: suspected, in progress, held, out of service
    domain_hosts: Mapping[str, int] = field(default_factory=dict)  # compute hosts per failure domain
    domain_down: Mapping[str, int] = field(default_factory=dict)  # open incidents per failure domain
    started: int = 0  # fencing starts within limits.rate_window
    opened: int = 0  # incidents opened within limits.burst_window
    over_limit_at: datetime | None = None  # last time `down` was over a mass limit (storm cooldown)
    heartbeat_at: datetime | None = None  # the watchdog alert last received
    nova_ok: bool | None = None  # the last contact with Nova worked; None: no cloud
    nova_error: str = ""
    upstream_down: frozenset[str] = frozenset()  # failure domains an upstream alert says are cut off
    silences: tuple[Silence, ...] | None = ()  # active Alertmanager silences; None: could not be read
    # Zabbix hosts in maintenance (technical name -> the maintenance's name); None: could not be read
    zabbix_maintenance: Mapping[str, str] | None = field(default_factory=dict)
    paused: str | None = None  # the global pause in force (who, when, why), or None


@dataclass(frozen=True)
class HostView:
    """What the gates need about this incident's host."""

    domain: str | None = None  # its failure domain (alert label, Nova zone or aggregate)
    opened_at: datetime | None = None  # when the incident opened: how long the fault lasts
    labels: tuple[Mapping[str, str], ...] = ()  # of its alerts now firing, one mapping each
    changes: int = 0  # fire and resolve reports for the host within limits.flap_window
    service: Mapping[str, Any] | None = None  # its nova-compute service as last read from Nova
    service_read_at: datetime | None = None


@dataclass(frozen=True)
class Limits:
    """The `gates:` configuration. None: that gate is off."""

    max_count: int | None = None
    max_fraction: float | None = None
    domain_max_count: int | None = None
    domain_max_fraction: float | None = None
    rate_hosts: int | None = None
    rate_window: float = 600
    storm_cooldown: float | None = None
    min_duration: float | None = None
    min_sources: int | None = None
    nova_heartbeat_age: float | None = None
    flap_changes: int | None = None
    flap_window: float = 600
    watchdog_max_age: float | None = None
    burst_count: int | None = None
    burst_window: float = 60
    nova_reachable: bool = True
    upstream: bool = True
    maintenance: bool = True
    silences: bool = False
    foreign_disable: bool = True
    reason_prefix: str = "nova-hostdown-bridge"
    recheck: float = 15  # a gate that waits on data the engine polls (heartbeat, sources): look again after

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Limits:
        g = config["gates"]
        per, rate, flap, burst = g["per_domain"], g["rate"], g["flapping"], g["burst"]
        return cls(max_count=g["max_count"], max_fraction=g["max_fraction"],
                   domain_max_count=per["max_count"], domain_max_fraction=per["max_fraction"],
                   rate_hosts=rate["hosts"], rate_window=rate["window"], storm_cooldown=g["storm_cooldown"],
                   min_duration=g["min_duration"], min_sources=g["min_sources"],
                   nova_heartbeat_age=g["nova_heartbeat_age"], flap_changes=flap["changes"],
                   flap_window=flap["window"], watchdog_max_age=(g["watchdog"] or {}).get("max_age"),
                   burst_count=burst["count"], burst_window=burst["window"], nova_reachable=g["nova_reachable"],
                   upstream=g["upstream"], maintenance=g["maintenance"],
                   silences=g["alertmanager_silences"] is not None, foreign_disable=g["foreign_disable"],
                   reason_prefix=config["nova"]["reason_prefix"], recheck=g["recheck"])


def _ok(gate: str, reason: str = "passed") -> Verdict:
    return Verdict(gate, True, reason)


def _limits(facts: Facts) -> Limits:
    return facts.policy.gates


def pause(facts: Facts) -> Verdict:
    """Fail closed (it is read with the fleet). While a person has paused the bridge, nothing
    new starts; work in flight (already fencing or past it) finishes. Waits: when the pause is
    lifted, incidents go on by themselves. Never approvable for one incident."""
    if facts.fleet.paused is None:
        return _ok("pause", "not paused")
    return Verdict("pause", False, f"{facts.fleet.paused}: nothing new starts",
                   until=facts.now + timedelta(seconds=_limits(facts).recheck))


# ---- mass-failure limits ------------------------------------------------------------------

def _allowed(count: int | None, fraction: float | None, total: int | None) -> int | None:
    """How many hosts may be down at once under a count and a fraction (the smaller)."""
    bounds = [c for c in (count,) if c is not None]
    if fraction is not None and total:
        bounds.append(int(fraction * total))
    return min(bounds) if bounds else None


def fleet_over_limit(fleet: Fleet, limits: Limits) -> bool:
    """Whether the fleet is over max_count or max_fraction (the storm cooldown starts from it)."""
    allowed = _allowed(limits.max_count, limits.max_fraction, fleet.hosts)
    return allowed is not None and fleet.down > allowed


def mass_limit(facts: Facts) -> Verdict:
    """Fail closed. Held while more hosts are down than max_count, or than max_fraction of the
    compute hosts Nova lists (cumulative: in progress, held, and out of service until returned).
    A fraction with no host count from Nova cannot be checked: held."""
    limits, fleet = _limits(facts), facts.fleet
    if limits.max_count is None and limits.max_fraction is None:
        return _ok("mass_limit", "off")
    if limits.max_fraction is not None and not fleet.hosts:
        return Verdict("mass_limit", False, "max_fraction set but Nova's host count is unknown: holding")
    allowed = _allowed(limits.max_count, limits.max_fraction, fleet.hosts)
    if fleet.down > allowed:
        of = f" of {fleet.hosts}" if fleet.hosts else ""
        return Verdict("mass_limit", False, f"{fleet.down}{of} hosts down, more than the {allowed} allowed at once "
                                            "(a switch, partition or monitoring fault?): holding")
    return _ok("mass_limit", f"{fleet.down} down, {allowed} allowed")


def domain_limit(facts: Facts) -> Verdict:
    """Fail closed. The same limits per failure domain (rack label, Nova zone or aggregate). A
    host whose domain is unknown while domain limits are set is held; a fraction needs the
    domain's host count (Nova's domains have one; alert labels do not, so only the count
    applies to them)."""
    limits, fleet, host = _limits(facts), facts.fleet, facts.host
    if limits.domain_max_count is None and limits.domain_max_fraction is None:
        return _ok("domain_limit", "off")
    if host.domain is None:
        return Verdict("domain_limit", False, "per-domain limits set but this host's failure domain is unknown")
    down = fleet.domain_down.get(host.domain, 0)
    allowed = _allowed(limits.domain_max_count, limits.domain_max_fraction, fleet.domain_hosts.get(host.domain))
    if allowed is None:  # only a fraction, and no host count for this domain
        return _ok("domain_limit", f"no host count for domain {host.domain}")
    if down > allowed:
        return Verdict("domain_limit", False, f"{down} hosts down in failure domain {host.domain}, more than the "
                                              f"{allowed} allowed (its switch or power?): holding")
    return _ok("domain_limit", f"{down} down in {host.domain}, {allowed} allowed")


def storm_cooldown(facts: Facts) -> Verdict:
    """Fail closed. After the fleet was over a mass limit, nothing new starts until it has
    stayed under it for storm_cooldown seconds (waits, then goes on by itself)."""
    limits, last = _limits(facts), facts.fleet.over_limit_at
    if limits.storm_cooldown is None or last is None:
        return _ok("storm_cooldown", "off" if limits.storm_cooldown is None else "no storm seen")
    ends = last + timedelta(seconds=limits.storm_cooldown)
    if facts.now < ends:
        return Verdict("storm_cooldown", False, f"a storm was seen at {last.isoformat()}: nothing new starts "
                                                f"before {ends.isoformat()}", until=ends)
    return _ok("storm_cooldown", "cooled down")


def rate_limit(facts: Facts) -> Verdict:
    """Fail closed. At most rate.hosts fencing starts per rate.window (waits for the window)."""
    limits = _limits(facts)
    if limits.rate_hosts is None:
        return _ok("rate_limit", "off")
    if facts.fleet.started >= limits.rate_hosts:
        return Verdict("rate_limit", False, f"{facts.fleet.started} fencing starts within {limits.rate_window:g}s, "
                                            f"the most allowed: waiting",
                       until=facts.now + timedelta(seconds=limits.recheck))
    return _ok("rate_limit", f"{facts.fleet.started} started in the window")


# ---- corroboration and debounce ----------------------------------------------------------

def min_duration(facts: Facts) -> Verdict:
    """Fail closed. The fault must have lasted min_duration seconds (waits until then)."""
    limits, opened = _limits(facts), facts.host.opened_at
    if limits.min_duration is None:
        return _ok("min_duration", "off")
    if opened is None:
        return Verdict("min_duration", False, "when the fault started is unknown: waiting",
                       until=facts.now + timedelta(seconds=limits.recheck))
    ready = opened + timedelta(seconds=limits.min_duration)
    if facts.now < ready:
        return Verdict("min_duration", False, f"the fault must last {limits.min_duration:g}s: waiting until "
                                              f"{ready.isoformat()}", until=ready)
    return _ok("min_duration", "lasted long enough")


def corroboration(facts: Facts) -> Verdict:
    """Fail closed. At least min_sources independent sources must report the host down now
    (waits for more)."""
    limits = _limits(facts)
    if limits.min_sources is None or limits.min_sources <= 1:
        return _ok("corroboration", "off")
    sources = sorted(s for s, n in facts.signals.firing.items() if n > 0)
    if len(sources) < limits.min_sources:
        return Verdict("corroboration", False, f"{len(sources)} of the {limits.min_sources} sources required "
                                               f"report it ({', '.join(sources) or 'none'}): waiting",
                       until=facts.now + timedelta(seconds=limits.recheck))
    return _ok("corroboration", ", ".join(sources))


def nova_heartbeat(facts: Facts) -> Verdict:
    """Fail closed. Nova must agree: the service's updated_at heartbeat was older than
    nova_heartbeat_age when Nova was last read (waits; no reading or no cloud: waits)."""
    limits, svc, read_at = _limits(facts), facts.host.service, facts.host.service_read_at
    if limits.nova_heartbeat_age is None:
        return _ok("nova_heartbeat", "off")
    beat = (svc or {}).get("updated_at")
    if beat is None or read_at is None:
        return Verdict("nova_heartbeat", False, "no heartbeat of the service read from Nova: waiting",
                       until=facts.now + timedelta(seconds=limits.recheck))
    age = (read_at - beat).total_seconds()  # as of the read: a stale read never makes it look older
    if age < limits.nova_heartbeat_age:
        return Verdict("nova_heartbeat", False, f"Nova saw the service {age:.0f}s before its last read "
                                                f"(needs {limits.nova_heartbeat_age:g}s): waiting",
                       until=facts.now + timedelta(seconds=limits.recheck))
    return _ok("nova_heartbeat", f"heartbeat {age:.0f}s old")


def flapping(facts: Facts) -> Verdict:
    """Fail closed. A host with flapping.changes or more fire/resolve reports within
    flapping.window is held."""
    limits = _limits(facts)
    if limits.flap_changes is None:
        return _ok("flapping", "off")
    if facts.host.changes >= limits.flap_changes:
        return Verdict("flapping", False, f"{facts.host.changes} fire/resolve reports within "
                                          f"{limits.flap_window:g}s: the host is flapping, holding")
    return _ok("flapping", f"{facts.host.changes} changes")


# ---- observer health ---------------------------------------------------------------------

def watchdog(facts: Facts) -> Verdict:
    """Fail closed. The always-firing heartbeat alert (Alertmanager's Watchdog) must have
    arrived within watchdog.max_age: without it, monitoring itself may be down. Never seen: held."""
    limits, beat = _limits(facts), facts.fleet.heartbeat_at
    if limits.watchdog_max_age is None:
        return _ok("watchdog", "off")
    if beat is None:
        return Verdict("watchdog", False, "the monitoring heartbeat alert was never received: holding")
    age = (facts.now - beat).total_seconds()
    if age > limits.watchdog_max_age:
        return Verdict("watchdog", False, f"the monitoring heartbeat alert last arrived {age:.0f}s ago "
                                          f"(max {limits.watchdog_max_age:g}s): monitoring may be down, holding")
    return _ok("watchdog", f"heartbeat {age:.0f}s ago")


def burst(facts: Facts) -> Verdict:
    """Fail closed. Held while burst.count or more incidents opened within burst.window."""
    limits = _limits(facts)
    if limits.burst_count is None:
        return _ok("burst", "off")
    if facts.fleet.opened >= limits.burst_count:
        return Verdict("burst", False, f"{facts.fleet.opened} hosts went down within {limits.burst_window:g}s: "
                                       "a burst, holding")
    return _ok("burst", f"{facts.fleet.opened} opened in the window")


def nova_reachable(facts: Facts) -> Verdict:
    """Fail closed. Nothing is fenced while the last contact with Nova failed: the host could
    not then be forced down. No cloud configured (dry-run only): passes."""
    fleet = facts.fleet
    if not _limits(facts).nova_reachable or fleet.nova_ok is None:
        return _ok("nova_reachable", "off or no cloud")
    if not fleet.nova_ok:
        return Verdict("nova_reachable", False, f"Nova cannot be reached ({fleet.nova_error or 'no answer'}): holding")
    return _ok("nova_reachable", "reachable")


# ---- inhibition, silences and maintenance ------------------------------------------------

def upstream(facts: Facts) -> Verdict:
    """Fail open (no upstream alert, nothing to hold). Held while an upstream alert (rules of
    kind upstream_down: its switch, PDU, BMC network) fires for the host's failure domain."""
    domain = facts.host.domain
    if not _limits(facts).upstream or domain is None or domain not in facts.fleet.upstream_down:
        return _ok("upstream", "no upstream alert")
    return Verdict("upstream", False, f"an upstream alert fires for {domain}: the host may only be cut off, holding")


_TRUE = ("", "0", "false", "no", "none")


def maintenance(facts: Facts) -> Verdict:
    """Fail open (a label absent means no maintenance; Zabbix's API unreadable: none known).
    Held while one of the host's firing alerts says it is in scheduled downtime (Nagios,
    Icinga: downtime_depth > 0) or maintenance (a maintenance or suppressed label), or while
    Zabbix's API lists a host in maintenance whose technical name is this host's or the `host`
    label of one of its firing alerts (Zabbix's {HOST.HOST})."""
    if not _limits(facts).maintenance:
        return _ok("maintenance", "off")
    for labels in facts.host.labels:
        if labels.get("downtime_depth", "0").strip() not in _TRUE:
            return Verdict("maintenance", False, f"in scheduled downtime (depth {labels['downtime_depth']}): holding")
        for name in ("maintenance", "suppressed"):
            if labels.get(name, "").strip().lower() not in _TRUE:
                return Verdict("maintenance", False, f"in maintenance ({name}={labels[name]}): holding")
    zabbix = facts.fleet.zabbix_maintenance
    if zabbix:
        names = [facts.incident.host, *(labels["host"] for labels in facts.host.labels if labels.get("host"))]
        found = next((name for name in names if name in zabbix), None)
        if found is not None:
            return Verdict("maintenance", False, f"Zabbix host {found} is in maintenance "
                                                 f"({zabbix[found]}): holding")
    if zabbix is None:
        return _ok("maintenance", "none known (Zabbix maintenance could not be read: fail open)")
    return _ok("maintenance", "none")


def silenced(facts: Facts) -> Verdict:
    """Fail closed. Held while an active Alertmanager silence matches one of the host's firing
    alerts; silences that could not be read: held."""
    limits, silences = _limits(facts), facts.fleet.silences
    if not limits.silences:
        return _ok("silenced", "off")
    if silences is None:
        return Verdict("silenced", False, "Alertmanager silences could not be read: holding")
    for labels in facts.host.labels:
        for silence in silences:
            if silence.silences(labels):
                return Verdict("silenced", False, f"silenced in Alertmanager ({silence.id} by {silence.created_by}: "
                                                  f"{silence.comment}): holding")
    return _ok("silenced", "no silence matches")


def foreign_disable(facts: Facts) -> Verdict:
    """Fail open (no reading from Nova: nothing says someone else disabled it). Held when
    Nova's service is already disabled with a reason the bridge did not write."""
    limits, svc = _limits(facts), facts.host.service
    if not limits.foreign_disable or not svc or svc.get("status") != "disabled":
        return _ok("foreign_disable", "not disabled")
    reason = svc.get("disabled_reason") or ""
    if reason.startswith(limits.reason_prefix):
        return _ok("foreign_disable", "disabled by this bridge")
    return Verdict("foreign_disable", False, f"Nova's service is already disabled by someone else "
                                             f"({reason or 'no reason given'}): holding")


# ---- the rule that never breaks ----------------------------------------------------------

def fencing_proof(facts: Facts) -> Verdict:
    """Never approvable. The rule that never breaks: no force-down, no evacuation, without
    fencing proof for that host, in that incident."""
    inc, proof = facts.incident, facts.proof
    if proof is None:
        return Verdict("fencing_proof", False,
                       f"no fencing proof for {inc.host} in incident {inc.id}: refusing to touch Nova")
    if proof.incident_id != inc.id or proof.host != inc.host or proof.id is None:
        return Verdict("fencing_proof", False,
                       f"evidence {proof.id} belongs to incident {proof.incident_id} ({proof.host}), "
                       f"not to incident {inc.id} ({inc.host}): refusing to touch Nova")
    return Verdict("fencing_proof", True, f"fenced: {proof.kind} by {proof.actor}")


# checked, in order, before fencing starts: the pause, observers (they say the other inputs are
# sound), then host-level holds, then the fleet's limits, then the waits
BEFORE_FENCING = (pause, nova_reachable, watchdog, burst, maintenance, silenced, foreign_disable, upstream, flapping,
                  mass_limit, domain_limit, storm_cooldown, min_duration, corroboration, nova_heartbeat, rate_limit)
# checked, in order, before every effect that touches Nova
BEFORE_NOVA = (fencing_proof,)
# the gates a person may approve for one incident
APPROVABLE = frozenset(g.__name__ for g in BEFORE_FENCING) - {"pause"}


def first_closed(facts: Facts, gates=BEFORE_NOVA) -> Verdict | None:
    """The first gate that does not pass, skipping those approved for this incident."""
    for gate in gates:
        if gate.__name__ in facts.approvals and gate.__name__ in APPROVABLE:
            continue
        verdict = gate(facts)
        if not verdict.passed:
            return verdict
    return None
