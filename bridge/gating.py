"""Gathers what the safety gates read, so that decide() stays pure: the fleet view (shared by
the steps of one process, read again after any process's intake, pause or (with a rate limit)
fencing start, or when view_ttl old), one host's view, its approvals, Alertmanager's silences (cached)
and whether Nova answers.

Only incidents about to start fencing (suspected) need any of it; other steps read nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable

import requests
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.exc import SQLAlchemyError

from bridge import incidents as sm
from bridge import metrics
from bridge.config import read_secret
from bridge.gates import Fleet, Limits, Matcher, Silence, fleet_over_limit, watchdog
from bridge.store import gating as reads

log = logging.getLogger(__name__)

# an incident for asking a fleet-wide gate about the fleet alone
_PROBE = sm.Facts(now=datetime.min, incident=sm.Incident(0, "-", sm.SUSPECTED, True))

# every hold or wait a gate caused, by gate (shadow included); per process, like the shed counter


def observer_health(inventory, inputs: GateInputs | None) -> dict[str, str]:
    """Each observer the gates trust, and the global pause: "ok", or why nothing new starts.
    /readyz shows it."""
    out: dict[str, str] = {"pause": inventory.store.pause_state() or "ok"}
    nova_ok, nova_error = inventory.nova_state()
    if nova_ok is not None:
        out["nova"] = "ok" if nova_ok else f"unreachable: {nova_error}"[:200]
    fleet = inputs.last if inputs is not None else None
    if inputs is not None and inputs.limits.watchdog_max_age is not None and fleet is not None:
        verdict = watchdog(dataclasses.replace(_PROBE, now=inputs.clock(), fleet=fleet,
                                               policy=sm.Policy(gates=inputs.limits)))
        out["watchdog"] = "ok" if verdict.passed else verdict.reason
    return out


class ObserverCollector:
    """hostdown_bridge_observer_up{observer}: 1 while it is trusted, 0 while it holds fencing
    (observer "pause": 0 while paused)."""

    def __init__(self, inventory, inputs: GateInputs | None):
        self.inventory, self.inputs = inventory, inputs

    def collect(self):
        family = GaugeMetricFamily("hostdown_bridge_observer_up", "Observers the safety gates trust: "
                                   "1 ok, 0 failing (fencing held)", labels=["observer"])
        try:
            health = observer_health(self.inventory, self.inputs)
        except SQLAlchemyError:  # the database is down: hostdown_bridge_database_up says so
            return []
        for name, state in health.items():
            family.add_metric([name], 1.0 if state == "ok" else 0.0)
        return [family]


class _Cached:
    """A peer's answer, read at most every `cache` seconds; None while it cannot be read."""

    what = ""

    def __init__(self, spec: dict[str, Any]):
        self.cache, self.timeout = spec.get("cache", 30), spec.get("timeout", 5)
        self._read_at: float | None = None
        self._value: Any = None

    def current(self):
        if self._read_at is not None and time.monotonic() - self._read_at < self.cache:
            return self._value
        self._read_at = time.monotonic()
        try:
            self._value = self._read()
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            log.warning("cannot read %s from %s: %s", self.what, self.url, exc)
            self._value = None
        return self._value

    def _read(self):
        raise NotImplementedError


class Silences(_Cached):
    """Alertmanager's active silences."""

    what = "Alertmanager silences"

    def __init__(self, spec: dict[str, Any], get: Callable[..., Any] = requests.get):
        super().__init__(spec)
        self.url = spec["url"].rstrip("/") + "/api/v2/silences"
        self._get = get

    def _read(self) -> tuple[Silence, ...]:
        response = self._get(self.url, timeout=self.timeout)
        response.raise_for_status()
        return tuple(
            Silence(s["id"], tuple(Matcher(m["name"], m["value"], bool(m.get("isRegex")), m.get("isEqual", True))
                                   for m in s.get("matchers", [])),
                    s.get("createdBy", ""), s.get("comment", ""))
            for s in response.json() if s.get("status", {}).get("state") == "active")


class ZabbixMaintenance(_Cached):
    """The hosts Zabbix's API says are in maintenance now (host.get maintenance_status=1, which
    Zabbix's timer sets when a maintenance period starts), by technical name -> the
    maintenance's name. Its JSON-RPC API (6.0 to 7.0) with an API token (Users > API tokens)
    of a user who may read the compute hosts."""

    what = "Zabbix maintenance"

    def __init__(self, spec: dict[str, Any], token: str, post: Callable[..., Any] = requests.post):
        super().__init__(spec)
        self.url, self._token, self._post = spec["url"], token, post

    def _call(self, method: str, params: dict) -> Any:
        response = self._post(self.url, json={"jsonrpc": "2.0", "method": method, "params": params,
                                              "auth": self._token, "id": 1}, timeout=self.timeout)
        response.raise_for_status()
        answer = response.json()
        if "error" in answer:
            raise ValueError(f"{method}: {answer['error'].get('data') or answer['error'].get('message')}")
        return answer["result"]

    def _read(self) -> dict[str, str]:
        hosts = self._call("host.get", {"output": ["host", "maintenanceid"], "filter": {"maintenance_status": "1"}})
        if not hosts:
            return {}
        names = {m["maintenanceid"]: m["name"] for m in self._call("maintenance.get", {
            "output": ["name"], "maintenanceids": sorted({h["maintenanceid"] for h in hosts})})}
        return {h["host"]: names.get(h["maintenanceid"], f"maintenance {h['maintenanceid']}") for h in hosts}


class GateInputs:
    def __init__(self, config, store, inventory, clock: Callable[[], datetime]):
        gates = config["gates"]
        self.limits = Limits.from_config(config)
        self.domain, self.watchdog, self.ttl = gates["failure_domain"], gates["watchdog"], gates["view_ttl"]
        self.silences = Silences(gates["alertmanager_silences"]) if gates["alertmanager_silences"] else None
        zabbix = gates["zabbix_maintenance"]
        self.zabbix = (ZabbixMaintenance(zabbix, read_secret(zabbix["token"], "gates.zabbix_maintenance.token"))
                       if zabbix else None)
        self.store, self.inventory, self.clock = store, inventory, clock
        self._lock = threading.Lock()
        self._fleet: Fleet | None = None
        self.last: Fleet | None = None  # the latest view, even once invalidated (for /readyz)
        self._read_at, self._read_for = 0.0, datetime.min.replace(tzinfo=timezone.utc)
        self._version: tuple = ()
        self.record: list[tuple] | None = None  # replay: every hold and wait, in order

    def fired(self, incident_id: int, decision: sm.Decision, now: datetime) -> None:
        """Count a decision a gate caused (the engine calls this once per decision it commits);
        with `record` set (replay), keep it there too."""
        gate = decision.detail.get("gate")
        if gate:
            effect = "wait" if decision.detail.get("waiting") else "hold"
            metrics.GATE_FIRED.labels(gate, effect).inc()
            if effect == "wait":  # a hold is a transition, on the timeline already
                until = decision.due_at.isoformat() if decision.due_at else None
                self.store.note_wait(incident_id, decision.cause, {**decision.detail, "until": until}, now)
            if self.record is not None:
                self.record.append((now, incident_id, gate, effect, decision.cause))

    def invalidate(self) -> None:
        """Something the fleet view counts changed here (signals taken in): read it again even
        where the database's version cannot show it (a simulated clock stands still)."""
        self._fleet = None

    def fencing_started(self) -> None:
        """A fencing start was committed here: one more for the rate limit, if one is set."""
        if self.limits.rate_hosts is not None:
            self.invalidate()

    def fleet(self, now: datetime) -> Fleet:
        with self._lock:
            recent = (self._fleet is not None and time.monotonic() - self._read_at < self.ttl
                      and abs((now - self._read_for).total_seconds()) < self.ttl)  # a simulated clock moves too
            if recent:  # and no process changed what it counts since (another worker's intake)
                with self.store.reader.connect() as conn:
                    if reads.fleet_version(conn, self.limits) == self._version:
                        return self._fleet
            self.inventory.known_hosts()  # refreshed when old: Nova's host count, and whether it answers
            with self.store.reader.connect() as conn:
                self._version = reads.fleet_version(conn, self.limits)  # first: a change during the counts reads them again
                counts = reads.fleet_counts(conn, now, self.limits, self.domain, self.watchdog)
            nova_ok, nova_error = self.inventory.nova_state()
            fleet = Fleet(**counts, nova_ok=nova_ok, nova_error=nova_error,
                          silences=self.silences.current() if self.silences else (),
                          zabbix_maintenance=self.zabbix.current() if self.zabbix else {})
            if self.limits.storm_cooldown is not None and fleet_over_limit(fleet, self.limits):
                self.store.mark_storm(now)  # in the database: restarts and other processes see it
                fleet = dataclasses.replace(fleet, over_limit_at=max(now, fleet.over_limit_at or now))
            self._fleet = self.last = fleet
            self._read_at, self._read_for = time.monotonic(), now
            return self._fleet

    def facts_for(self, snapshot, now: datetime, read: tuple[Any, sm.Facts] | None = None) -> dict[str, Any]:
        """Facts fields for this snapshot: only a suspected incident's gates are checked.

        `read`: an earlier snapshot of the incident and the facts gathered for it at the same
        `now` (the engine's unleased look, just before it took the lease). When the claim shows
        the incident exactly as then (same row, counts, evidence, and no event since: every
        signal taken in for a suspected incident nudges it), the host's view and approvals read
        for it are still the same: they are not read twice."""
        inc = snapshot.incident
        if inc.state != sm.SUSPECTED:
            return {}
        fleet = self.fleet(now)
        if read is not None and _unchanged(read[0], snapshot) and read[1].now == now:
            return {"fleet": fleet, "host": read[1].host, "approvals": read[1].approvals}
        with self.store.reader.connect() as conn:
            host = reads.host_view(conn, inc.id, inc.host, now, self.limits, self.domain)
            approvals = reads.approved(conn, inc.id)
        return {"fleet": fleet, "host": host, "approvals": approvals}


def _unchanged(before, after) -> bool:
    """Whether two snapshots show an incident alike in everything its gates' inputs follow."""
    return (before.incident == after.incident and before.nudges == after.nudges
            and before.signals == after.signals and before.evidence == after.evidence)
