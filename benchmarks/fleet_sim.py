"""Fleet simulation: the real engine and store against a simulated Nova, BMCs and monitoring.

2,000 compute hosts in 50 racks of 40, one seeded scenario after another, each on a fresh
database (SQLite; --postgres adds the same runs on a private PostgreSQL cluster started as
the tests start it): single deaths, a rack lost behind its switch, a monitoring outage
(Watchdog gap), a partition hiding 30 % of the hosts, flapping hosts, and a storm of 5 %
truly dead. Monitoring reports a host down 30 s after it stops answering (dead or hidden) and
resolves it when it answers again; the simulated BMC powers a host off and reads back off.
The clock is simulated; every engine step is timed in wall and CPU time.

Per scenario: hosts truly dead, fenced (powered off by the bridge), held, wrongly fenced (a
live host powered off: must be 0), missed (truly dead, not forced down in Nova by the end),
and the time from death to the last correct force-down. Last line:
`fleet_sim hosts=2000 scenarios=<k> wrongly_fenced=0 missed=<n> p99_decision_ms=<x>`.
p99_decision_ms is the 99th percentile of one engine step's wall time (claim, snapshot,
gates, decide, effect, commit), measured on a shared machine: pessimistic.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge import incidents as sm  # noqa: E402
from bridge.config import Config, validate  # noqa: E402
from bridge.effects import Evidence, FenceCheck, FenceRequest, Outcome  # noqa: E402
from bridge.engine import Engine  # noqa: E402
from bridge.incidents import Incident  # noqa: E402
from bridge.rules import classify  # noqa: E402
from bridge.signals import FIRING, RESOLVED, Signal  # noqa: E402
from bridge.store import Store, create_engine, upgrade  # noqa: E402
from tests.fakes import FakeNova  # noqa: E402

HOSTS, RACKS = 2000, 50
START = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
TICK = 5  # simulated seconds between monitoring rounds
HORIZON = 1800
ALERT_AFTER = 30  # monitoring's `for:`

GATES = {
    "max_fraction": 0.1, "storm_cooldown": 600,
    "failure_domain": {"label": "rack"}, "per_domain": {"max_count": 10},
    "rate": {"hosts": 20, "window": 60}, "min_duration": 60,
    "flapping": {"changes": 6, "window": 600},
    "watchdog": {"source": "alertmanager", "match": {"alertname": "Watchdog"}, "max_age": 180},
    "burst": {"count": 150, "window": 60},
}
RULES = [
    {"name": "host-down", "source": "alertmanager", "match": {"alertname": "HostDown"}, "kind": "host_down",
     "host": {"template": "{{ labels.openstack_host }}"}},
    {"name": "tor-down", "source": "alertmanager", "match": {"alertname": "SwitchDown"}, "kind": "upstream_down",
     "host": {"template": "{{ labels.rack }}"}},
]


@dataclass
class World:
    """The truth the bridge cannot see directly."""

    clock: "SimClock"
    hosts: list[str]
    rack: dict[str, str]
    dead: dict[str, datetime] = field(default_factory=dict)  # truly dead, since
    hidden: set[str] = field(default_factory=set)  # alive, but monitoring cannot see them
    powered_off: set[str] = field(default_factory=set)  # by the bridge's fencing
    wrongly_fenced: set[str] = field(default_factory=set)
    watchdog: bool = True
    switch_down: set[str] = field(default_factory=set)  # racks whose ToR switch is down

    def looks_down(self, host: str) -> bool:
        return host in self.dead or host in self.hidden or host in self.powered_off


class SimClock:
    def __init__(self):
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class SimBmc:
    """A BMC per host: power off, read back. Never reachable for a host cut off by its switch."""

    name = "simbmc"

    def __init__(self, world: World):
        self.world = world

    def request(self, effect: FenceRequest, incident: Incident, *, dry_run: bool) -> Outcome:
        host = incident.host
        if host not in self.world.dead:
            self.world.wrongly_fenced.add(host)
        self.world.powered_off.add(host)
        return Outcome(effect, f"sim BMC: power off {host}")

    def check(self, effect: FenceCheck, incident: Incident, evidence, now: datetime) -> Outcome:
        if incident.host in self.world.powered_off:
            return Outcome(effect, proof=Evidence(None, incident.id, incident.host, self.name, "sim-bmc",
                                                  "power state read back off", now))
        return Outcome(effect, recheck_at=now + timedelta(seconds=TICK))


class SimNova(FakeNova):
    """FakeNova that notes when each host was forced down, on the simulated clock."""

    def __init__(self, hosts: list[str], clock: SimClock):
        super().__init__(hosts)
        self.clock = clock
        self.forced_at: dict[str, datetime] = {}

    def force_down(self, host: str, *, dry_run: bool):
        record = super().force_down(host, dry_run=dry_run)
        if not dry_run and not record.skipped:
            self.forced_at[host] = self.clock()
        return record


class Monitoring:
    """Prometheus + Alertmanager, simulated: HostDown per host, SwitchDown per rack, Watchdog."""

    def __init__(self, world: World):
        self.world = world
        self.down_since: dict[str, datetime] = {}
        self.firing: set[str] = set()
        self.switch_firing: set[str] = set()
        self.last_watchdog: datetime | None = None

    def _signal(self, alertname: str, key: str, status: str, labels: dict, since: datetime) -> Signal:
        return Signal("alertmanager", f"fp-{alertname}-{key}", status, {"alertname": alertname, **labels}, {},
                      since, None if status == FIRING else self.world.clock())

    def round(self) -> list[Signal]:
        world, now, out = self.world, self.world.clock(), []
        if world.watchdog and (self.last_watchdog is None or now - self.last_watchdog >= timedelta(seconds=60)):
            out.append(self._signal("Watchdog", "all", FIRING, {}, START))
            self.last_watchdog = now
        for rack in world.switch_down - self.switch_firing:
            out.append(self._signal("SwitchDown", rack, FIRING, {"rack": rack}, now))
            self.switch_firing.add(rack)
        for host in world.hosts:
            if world.looks_down(host):
                since = self.down_since.setdefault(host, now)
                if host not in self.firing and now - since >= timedelta(seconds=ALERT_AFTER):
                    self.firing.add(host)
                    out.append(self._signal("HostDown", f"{host}-{since:%H%M%S}", FIRING,
                                            {"openstack_host": host, "rack": world.rack[host]}, since))
            elif host in self.down_since:
                since = self.down_since.pop(host)
                if host in self.firing:
                    self.firing.discard(host)
                    out.append(self._signal("HostDown", f"{host}-{since:%H%M%S}", RESOLVED,
                                            {"openstack_host": host, "rack": world.rack[host]}, since))
        return out


# ---- scenarios: what happens at which simulated second ------------------------------------------

def _die(world: World, host: str):
    return lambda: world.dead.setdefault(host, world.clock())


def single_deaths(world: World, rng: random.Random) -> dict[int, list]:
    return {300 * n: [_die(world, h)] for n, h in enumerate(rng.sample(world.hosts, 5))}


def rack_behind_switch(world: World, rng: random.Random) -> dict[int, list]:
    rack = f"r{rng.randrange(RACKS):02d}"

    def cut():
        world.switch_down.add(rack)
        world.hidden |= {h for h in world.hosts if world.rack[h] == rack}
    return {0: [cut]}


def watchdog_gap(world: World, rng: random.Random) -> dict[int, list]:
    chosen = rng.sample(world.hosts, 53)
    glitch, victims = set(chosen[:50]), chosen[50:]

    def breaks():
        world.watchdog = False

    def back():
        world.watchdog = True
        world.hidden -= glitch
    return {0: [breaks], 300: [lambda: world.hidden.update(glitch)] + [_die(world, h) for h in victims],
            900: [back]}


def partition_30(world: World, rng: random.Random) -> dict[int, list]:
    cut_off = set(rng.sample(world.hosts, int(0.3 * len(world.hosts))))
    return {0: [lambda: world.hidden.update(cut_off)], 1200: [lambda: world.hidden.difference_update(cut_off)]}


def flapping(world: World, rng: random.Random) -> dict[int, list]:
    flappers = set(rng.sample(world.hosts, 10))
    return {t: [lambda hide=(n % 2 == 0): (world.hidden.update(flappers) if hide
                                             else world.hidden.difference_update(flappers))]
            for n, t in enumerate(range(0, 900, 40))}


def storm_5pct(world: World, rng: random.Random) -> dict[int, list]:
    events: dict[int, list] = {}
    for n, host in enumerate(rng.sample(world.hosts, int(0.05 * len(world.hosts)))):
        events.setdefault(5 * (n % 6), []).append(_die(world, host))  # spread over 30 s
    return events


SCENARIOS = [single_deaths, rack_behind_switch, watchdog_gap, partition_30, flapping, storm_5pct]


@dataclass
class Result:
    name: str
    database: str
    dead: int
    fenced: int
    held: int
    wrongly_fenced: int
    missed: int
    last_force_down_s: float | None
    steps: list[float]
    cpu: list[float]


def run_scenario(scenario, seed: int, database_url: str, label: str) -> Result:
    rng = random.Random(seed)
    hosts = [f"compute-{n:04d}" for n in range(HOSTS)]
    rack = {h: f"r{n // (HOSTS // RACKS):02d}" for n, h in enumerate(hosts)}
    clock = SimClock()
    world = World(clock, hosts, rack)
    nova = SimNova(hosts, clock)
    data = validate({"dry_run": False, "nova": {"cloud": "sim"}, "database": {"url": database_url},
                     "gates": GATES, "rules": RULES, "retention": {"enabled": False},
                     "fencing": {"timeout": 120}})
    config = Config(data=data, webhook_tokens={}, admin_tokens={})
    db = create_engine(database_url)
    upgrade(db)
    store = Store(db)
    engine = Engine(config, store, nova, clock=clock)
    engine.executor.fencing = SimBmc(world)
    steps: list[float] = []
    cpu: list[float] = []
    step = engine.step

    def timed(incident_id):
        wall, used = time.perf_counter(), time.process_time()
        try:
            return step(incident_id)
        finally:
            steps.append((time.perf_counter() - wall) * 1000)
            cpu.append((time.process_time() - used) * 1000)
    engine.step = timed
    monitoring = Monitoring(world)
    events = scenario(world, rng)
    clock.now = START - timedelta(seconds=60)  # monitoring has been healthy for a minute
    store.add_signals([(s, classify(s, RULES)) for s in monitoring.round()], clock.now)
    for second in range(0, HORIZON + 1, TICK):
        clock.now = START + timedelta(seconds=second)
        for t in [t for t in events if t <= second]:
            for fn in events.pop(t):
                fn()
        arrived = monitoring.round()
        if arrived:
            store.add_signals([(s, classify(s, RULES)) for s in arrived], clock.now)
        for _ in range(1000):
            if not engine.run_once():
                break
    incidents = store.list_incidents(limit=5000)
    forced = nova.forced_at
    truly = world.dead
    times = [(forced[h] - truly[h]).total_seconds() for h in truly if h in forced]
    db.dispose()
    return Result(scenario.__name__, label, len(truly), len(world.powered_off),
                  sum(1 for i in incidents if i["state"] == sm.HELD), len(world.wrongly_fenced),
                  sum(1 for h in truly if h not in forced), max(times) if times else None, steps, cpu)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--postgres", action="store_true", help="also on a private PostgreSQL cluster")
    parser.add_argument("--only", help="run only the scenario of this name")
    args = parser.parse_args()
    scenarios = [s for s in SCENARIOS if args.only in (None, s.__name__)]
    results: list[Result] = []
    print(f"{'scenario':<20} {'db':<10} {'dead':>5} {'fenced':>7} {'held':>5} {'wrong':>6} {'missed':>7} "
          f"{'last force-down':>16} {'steps':>6} {'p99 ms':>7} {'p99 cpu ms':>11} {'cpu ms/step':>12}")
    with tempfile.TemporaryDirectory(prefix="fleet-sim-") as tmp:
        backends = [("sqlite", lambda n: f"sqlite:///{Path(tmp) / f'{n}.sqlite'}")]
        cluster = None
        if args.postgres:
            from tests.harness.postgres import PostgresCluster
            os.chmod(tmp, 0o755)
            top = Path(tmp) / "pg-top"
            top.mkdir()
            top.chmod(0o755)
            cluster = PostgresCluster(top / "pg").start()

            def pg(n):
                cluster.execute(f"CREATE DATABASE sim_{n}")
                return cluster.url(f"sim_{n}")
            backends.append(("postgresql", pg))
        try:
            for label, url in backends:
                for n, scenario in enumerate(scenarios):
                    r = run_scenario(scenario, args.seed + n, url(f"{scenario.__name__}"), label)
                    results.append(r)
                    last = f"{r.last_force_down_s:.0f}s" if r.last_force_down_s is not None else "-"
                    print(f"{r.name:<20} {r.database:<10} {r.dead:>5} {r.fenced:>7} {r.held:>5} "
                          f"{r.wrongly_fenced:>6} {r.missed:>7} {last:>16} {len(r.steps):>6} "
                          f"{percentile(r.steps, 0.99):>7.1f} {percentile(r.cpu, 0.99):>11.1f} "
                          f"{sum(r.cpu) / max(1, len(r.cpu)):>12.2f}",
                          flush=True)
        finally:
            if cluster is not None:
                cluster.stop()
    steps = [s for r in results for s in r.steps]
    wrong = sum(r.wrongly_fenced for r in results)
    print(f"fleet_sim hosts={HOSTS} scenarios={len(results)} wrongly_fenced={wrong} "
          f"missed={sum(r.missed for r in results)} p99_decision_ms={percentile(steps, 0.99):.1f}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
