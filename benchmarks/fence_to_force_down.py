"""Time from a fence confirmation being accepted to Nova's force-down returning.

Runs the bridge as a real gunicorn process against the real Nova of tests/realnova,
holding the lab's lock throughout (a running lab is reused and left running; else one is
started for the run and stopped after). Each round: an Alertmanager
alert for a host, wait for the incident to ask for fencing, confirm, wait until done,
then put the host back. Prints, per round and in summary (p50, p99), the total and its parts:
Nova's own time (service lookup + PUT) and the bridge's own work (the rest): the commit that
holds the confirmation and the fenced transition together (Engine.confirm), an engine thread
woken with the claim, the force-down begun; and how long one fdatasync takes on this disk
meanwhile, since that commit waits for one whatever the bridge does. benchmarks/step_cpu.py
gives the CPU time of the same path, which load does not skew.

    NOVALAB_DIR=.novabox .venv/bin/python benchmarks/fence_to_force_down.py [--rounds 200]

Last line: fence_to_force_down n=N total_p50_ms=x total_p99_ms=x bridge_p50_ms=x bridge_p99_ms=x
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness.bridge_process import BridgeProcess, base_config  # noqa: E402
from tests.realnova.novalab import NovaLab  # noqa: E402


# after a confirmation, how long to leave the bridge alone before asking for the outcome
# (Nova's own part is 0.1-0.5 s here)
QUIET = 0.5


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)  # p99 of 40 would be the max
    args = parser.parse_args()
    with NovaLab().session() as lab:
        return run(lab, args.rounds)


def run(lab: NovaLab, rounds: int) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    config = base_config(workdir, dry_run=False, nova={"cloud": lab.cloud})
    bridge = BridgeProcess(workdir, config, env={"OS_CLIENT_CONFIG_FILE": str(lab.clouds_yaml)}).start()
    totals, nova_parts, accept, syncs = [], [], [], []
    try:
        for n in range(rounds):
            host = lab.hosts[n % len(lab.hosts)]
            lab.reset_host(host)
            alert = json.loads(Path("tests/samples/webhook_firing_api_v2.json").read_text())
            alert["alerts"][0]["labels"]["openstack_host"] = host
            alert["alerts"][0]["fingerprint"] = f"bench-{n}"
            t0 = time.monotonic()
            assert bridge.post_alert("alertmanager", alert).status_code == 202
            accept.append(time.monotonic() - t0)
            bridge.wait_for_incident(host, "fencing")
            assert bridge.confirm(host).status_code == 201
            time.sleep(QUIET)  # no polling while the bridge works: it would share the measured worker's CPU
            done = bridge.wait_for_incident(host, "out_of_service")
            confirmed = stamp(done["evidence"][0]["at"])
            forced = next(t for t in done["timeline"] if t["to_state"] == "forced_down" and t["from_state"] == "fenced")
            call = next(t["detail"] for t in done["timeline"] if t["cause"].startswith("nova force_down"))
            total = (stamp(forced["at"]) - confirmed).total_seconds()
            totals.append(total)
            nova_parts.append(call.get("seconds", 0.0))
            print(f"round {n + 1:>2} {host}: confirmation -> force-down returned {total * 1000:7.1f} ms "
                  f"(Nova {call.get('seconds', 0) * 1000:6.1f} ms, bridge {(total - call.get('seconds', 0)) * 1000:6.1f} ms)")
            bridge.request("POST", f"/v1/incidents/{done['id']}/close", json={"reason": "benchmark round over"})
            syncs.append(disk_sync(workdir / "probe"))
    finally:
        bridge.stop()
        for host in lab.hosts:
            lab.reset_host(host)
    own = [t - n for t, n in zip(totals, nova_parts)]

    def summary(name, values) -> tuple[float, float]:
        return summary_row(name, values, 52)

    print(f"\n{rounds} rounds against nova at {lab.endpoint}")
    print(f"{'':<52} {'p50 ms':>8} {'p99 ms':>8} {'min':>8} {'max':>8}")
    summary("alert POST -> 202 (stored)", accept)
    total = summary("confirmation accepted -> force-down returned", totals)
    summary("  of which Nova (service lookup + PUT)", nova_parts)
    bridge_own = summary("  of which the bridge's own work", own)
    summary("disk: one fdatasync (the window holds one commit)", syncs)
    print(f"fence_to_force_down n={len(totals)} total_p50_ms={total[0]:.1f} total_p99_ms={total[1]:.1f} "
          f"bridge_p50_ms={bridge_own[0]:.1f} bridge_p99_ms={bridge_own[1]:.1f}")
    return 0


def disk_sync(path: Path) -> float:
    """Seconds one 4 KiB write's fdatasync takes beside the bridge's database: its commits wait this long."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, os.urandom(4096), 0)
        started = time.monotonic()
        os.fdatasync(fd)
        return time.monotonic() - started
    finally:
        os.close(fd)


def summary_row(name: str, seconds: list[float], width: int) -> tuple[float, float]:
    """Print one table row (p50, p99, min, max in ms) and return its p50 and p99."""
    ms = sorted(v * 1000 for v in seconds)
    p50, p99 = percentile(ms, 50), percentile(ms, 99)
    print(f"{name:<{width}} {p50:8.1f} {p99:8.1f} {ms[0]:8.1f} {ms[-1]:8.1f}")
    return p50, p99


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ordered list."""
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


if __name__ == "__main__":
    sys.exit(main())
