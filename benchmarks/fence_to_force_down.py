"""Time from a fence confirmation being accepted to Nova's force-down returning.

Runs the bridge as a real gunicorn process against the real Nova of tests/realnova
(start it first: python -m tests.realnova.novalab up). Each round: an Alertmanager
alert for a host, wait for the incident to ask for fencing, confirm, wait until done,
then put the host back. Prints, per round and in summary, the total and its parts:
Nova's own time (service lookup + PUT) and the bridge's own work (the rest).

    .venv/bin/python benchmarks/fence_to_force_down.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness.bridge_process import BridgeProcess, base_config  # noqa: E402
from tests.realnova.novalab import NovaLab  # noqa: E402


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    lab = NovaLab()
    if not lab.is_running():
        print("the real Nova is not running: python -m tests.realnova.novalab up", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    config = base_config(workdir, dry_run=False, nova={"cloud": lab.cloud})
    bridge = BridgeProcess(workdir, config, env={"OS_CLIENT_CONFIG_FILE": str(lab.clouds_yaml)}).start()
    totals, nova_parts, accept = [], [], []
    try:
        for n in range(args.rounds):
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
    finally:
        bridge.stop()
        for host in lab.hosts:
            lab.reset_host(host)
    own = [t - n for t, n in zip(totals, nova_parts)]

    def summary(name, values):
        ms = sorted(v * 1000 for v in values)
        print(f"{name:<42} median {statistics.median(ms):7.1f} ms   min {ms[0]:7.1f}   max {ms[-1]:7.1f}")

    print(f"\n{args.rounds} rounds against nova at {lab.endpoint}")
    summary("alert POST -> 202 (stored)", accept)
    summary("confirmation accepted -> force-down returned", totals)
    summary("  of which Nova (service lookup + PUT)", nova_parts)
    summary("  of which the bridge's own work", own)
    return 0


if __name__ == "__main__":
    sys.exit(main())
