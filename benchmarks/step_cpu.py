"""CPU time of each store operation on the confirmation -> force-down path, in one process.

The store and engine of tests/conftest.py on a SQLite file (synchronous=FULL, as served),
against the fake Nova: each round opens an incident, waits in fencing, then times the
confirmation and the engine step that follows it. CPU time (time.process_time) does not
count waiting for fsync or for the CPU; it shows what the bridge itself spends, however
loaded the machine is. Wall time is printed beside it.

    .venv/bin/python benchmarks/step_cpu.py [--rounds 200]

Last line: step_cpu n=N confirm_cpu_p50_ms=x snapshot_cpu_p50_ms=x advance_cpu_p50_ms=x window_cpu_p50_ms=x
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge import incidents as sm  # noqa: E402
from bridge.engine import utcnow  # noqa: E402
from benchmarks.fence_to_force_down import percentile  # noqa: E402
from tests.conftest import InProcessBridge  # noqa: E402
from tests.fakes import FakeNova  # noqa: E402
from tests.test_engine import alert  # noqa: E402

TIMED = ("add_confirmation", "snapshot", "advance")


class Timings:
    """Wraps store methods; keeps (wall, cpu) of each call while on."""

    def __init__(self, store):
        self.on = False
        self.calls: dict[str, list[tuple[float, float]]] = {name: [] for name in TIMED}
        for name in TIMED:
            setattr(store, name, self._wrap(name, getattr(store, name)))

    def _wrap(self, name, method):
        def timed(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return method(*args, **kwargs)
            finally:
                if self.on:
                    self.calls[name].append((time.perf_counter() - wall, time.process_time() - cpu))
        return timed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    hosts = [f"compute-{n}" for n in range(4)]
    nova = FakeNova(hosts)
    bridge = InProcessBridge(Path(tempfile.mkdtemp(prefix="bench-")), nova, dry_run=False, nova={"cloud": "fake"})
    bridge.engine.clock = utcnow
    store, engine = bridge.store, bridge.engine
    timings = Timings(store)
    window: list[tuple[float, float]] = []  # the confirmation and the steps up to the force-down's start
    for n in range(args.rounds):
        host = hosts[n % len(hosts)]
        nova.services[host].update(forced_down=False, status="enabled")
        assert bridge.post_alert(alert(host=host, fingerprint=f"bench-{n}")).status_code == 202
        bridge.settle()
        timings.on = True
        wall, cpu = time.perf_counter(), time.process_time()
        started = {}
        run = engine.executor.run

        def run_and_note(effect, facts, run=run, started=started):
            started.setdefault(type(effect).__name__, (time.perf_counter(), time.process_time()))
            return run(effect, facts)
        engine.executor.run = run_and_note
        # as the API calls it: the fenced step is committed with the confirmation, then an
        # engine thread (here: this one) begins the force-down from the claim it was handed
        confirmed = engine.confirm(host, "ops", "benchmark", utcnow(), 600, detail={})
        engine.run_once()
        engine.executor.run = run
        timings.on = False
        force_down = started["ForceDown"]
        window.append((force_down[0] - wall, force_down[1] - cpu))
        assert store.get_incident(confirmed["incident_id"])["state"] == sm.OUT_OF_SERVICE
        store.operator_action(confirmed["incident_id"], "close", "ops", "benchmark round over", utcnow())

    def summary(name, pairs) -> float:
        if not pairs:  # the path no longer makes this call
            print(f"{name:<46} {'none':>8}")
            return 0.0
        walls, cpus = (sorted(v[i] * 1000 for v in pairs) for i in (0, 1))
        print(f"{name:<46} {percentile(cpus, 50):8.2f} {percentile(cpus, 99):8.2f} {cpus[0]:8.2f}"
              f" {percentile(walls, 50):9.2f} {len(pairs) / args.rounds:6.1f}")
        return percentile(cpus, 50)

    print(f"{args.rounds} rounds, SQLite file, fake Nova")
    print(f"{'':<46} {'cpu p50':>8} {'cpu p99':>8} {'cpu min':>8} {'wall p50':>9} {'/round':>6}  (ms)")
    confirm = summary("add_confirmation + fenced step (one commit)", timings.calls["add_confirmation"])
    snapshot = summary("snapshot (one read)", timings.calls["snapshot"])
    advance = summary("advance (one commit per step)", timings.calls["advance"])
    total = summary("confirmation -> force-down begins", window)
    print(f"step_cpu n={args.rounds} confirm_cpu_p50_ms={confirm:.2f} snapshot_cpu_p50_ms={snapshot:.2f} "
          f"advance_cpu_p50_ms={advance:.2f} window_cpu_p50_ms={total:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
