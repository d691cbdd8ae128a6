"""Time from an alert received to Nova's force-down returned, with the bridge fencing the host
itself: Redfish ForceOff and a read-back of off against sushy-tools' emulator (instant), then
force-down in the real Nova of tests/realnova. No person in the loop.

Runs the bridge as a real gunicorn process against the lab (held for the run, started if it is
not running; NOVALAB_DIR as for the tests). Each round: power the host's emulated system on, send an
Alertmanager alert, wait until the incident is out of service, then put the host back. Per
round and in summary (p50, p99): the total (the signal's received_at to the force-down's
timeline entry), the BMC's part (power off + read back), Nova's part (service lookup + PUT)
and the bridge's own work (the rest). The goal is p99 < 1 s.

    .venv/bin/python benchmarks/alert_to_force_down.py [--rounds 20]

Last line: alert_to_force_down driver=redfish n=N p50_ms=x p99_ms=x bmc_p50_ms=x bridge_p50_ms=x
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sushy  # noqa: E402
from sushy import auth as sushy_auth  # noqa: E402

from benchmarks.fence_to_force_down import stamp, summary_row  # noqa: E402
from tests.harness.bridge_process import BridgeProcess, base_config  # noqa: E402
from tests.harness.procs import group_members, wait_until  # noqa: E402
from tests.harness.redfish import USERNAME, RedfishEmulator, system_uuid  # noqa: E402
from tests.realnova.novalab import NovaLab  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "samples" / "webhook_firing_api_v2.json"


def power_on(emulator: RedfishEmulator, system: str) -> None:
    root = sushy.Sushy(emulator.url, auth=sushy_auth.BasicAuth(USERNAME, emulator.password))
    node = root.get_system(f"{root.get_system_collection().path.rstrip('/')}/{system_uuid(system)}")
    node.reset_system(sushy.ResetType.ON)
    wait_until(f"{system} on", lambda: (node.refresh(), node.power_state == sushy.PowerState.ON)[1], 15, 0.05)


def config(workdir: Path, lab: NovaLab, emulator: RedfishEmulator, systems: dict[str, str]) -> dict:
    (workdir / "bmc.pass").write_text(emulator.password + "\n")
    return base_config(
        workdir, dry_run=False, nova={"cloud": lab.cloud},
        fencing={"allow_loopback": True, "poll_interval": 0.05, "methods": [
            {"driver": "redfish", "address": emulator.url, "username": USERNAME,
             "password": {"file": str(workdir / "bmc.pass")}, "options": {"system_id": "{{ system }}",
                                                                           "auth": "basic"},
             "timeout": 10, "retries": 1}, {"driver": "manual"}],
            "hosts": {host: {"vars": {"system": system_uuid(system)}} for host, system in systems.items()}})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with NovaLab().session() as lab:  # held for this run (started here if not running)
        return run(lab, args.rounds)


def run(lab: NovaLab, rounds: int) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bench-fence-"))
    systems = {host: f"compute-0{i + 1}" for i, host in enumerate(lab.hosts)}
    emulator = RedfishEmulator(workdir / "bmc", instant=True)
    (workdir / "bmc").mkdir()
    emulator.start()
    bridge = BridgeProcess(workdir, config(workdir, lab, emulator, systems),
                           env={"OS_CLIENT_CONFIG_FILE": str(lab.clouds_yaml)}).start()
    totals, bmc, nova, cpu = [], [], [], []
    body = json.loads(SAMPLE.read_text())
    try:
        for n in range(rounds):
            host = lab.hosts[n % len(lab.hosts)]
            lab.reset_host(host)
            power_on(emulator, systems[host])
            alert = copy.deepcopy(body)
            alert["alerts"][0]["labels"]["openstack_host"] = host
            alert["alerts"][0]["fingerprint"] = f"bench-fence-{os.getpid()}-{n}"
            cpu_before = bridge_cpu(bridge)
            assert bridge.post_alert("alertmanager", alert).status_code == 202
            done = bridge.wait_for_incident(host, "out_of_service")
            cpu.append(bridge_cpu(bridge) - cpu_before)
            [signal] = bridge.request("GET", f"/v1/incidents/{done['id']}/signals").json()["signals"]
            forced = next(t for t in done["timeline"] if t["cause"].startswith("nova force_down done"))
            total = (stamp(forced["at"]) - stamp(signal["received_at"])).total_seconds()
            durations = done["evidence"][0]["detail"]["durations_ms"]
            bmc_s = ((durations["power_off"] or 0) + durations["read_back"]) / 1000
            totals.append(total)
            bmc.append(bmc_s)
            nova.append(forced["detail"].get("seconds", 0.0))
            print(f"round {n + 1:>2} {host}: alert received -> force-down returned {total * 1000:7.1f} ms "
                  f"(BMC {bmc_s * 1000:6.1f} ms, Nova {nova[-1] * 1000:6.1f} ms, "
                  f"bridge {(total - bmc_s - nova[-1]) * 1000:6.1f} ms)")
            bridge.request("POST", f"/v1/incidents/{done['id']}/close", json={"reason": "benchmark round over"})
    finally:
        bridge.stop()
        emulator.stop()
        for host in lab.hosts:
            lab.reset_host(host)
    own = [t - b - v for t, b, v in zip(totals, bmc, nova)]

    def summary(name, values) -> tuple[float, float]:
        return summary_row(name, values, 48)

    print(f"\n{rounds} rounds: Redfish emulator (instant) at {emulator.url}, nova at {lab.endpoint}")
    print("(measured on a shared machine: other work inflates these; CPU time below is the bridge's own)")
    print(f"{'':<48} {'p50 ms':>8} {'p99 ms':>8} {'min':>8} {'max':>8}")
    total = summary("alert received -> force-down returned", totals)
    bmc_p = summary("  of which the BMC (ForceOff + read back off)", bmc)
    summary("  of which Nova (service lookup + PUT)", nova)
    own_p = summary("  of which the bridge's own work", own)
    summary("bridge CPU time per round (all its processes)", cpu)
    print(f"alert_to_force_down driver=redfish n={len(totals)} p50_ms={total[0]:.1f} p99_ms={total[1]:.1f} "
          f"bmc_p50_ms={bmc_p[0]:.1f} bridge_p50_ms={own_p[0]:.1f}")
    return 0


def bridge_cpu(bridge: BridgeProcess) -> float:
    """CPU seconds used so far by the bridge's gunicorn master and workers (user + system)."""
    total = 0.0
    for pid in group_members(bridge.process.proc.pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


if __name__ == "__main__":
    sys.exit(main())
