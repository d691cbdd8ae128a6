"""The failed host's servers against the real Nova: from fencing proof until every request is
issued, and until every server is in its final state as read back from Nova.

Runs the bridge as a real gunicorn process against the lab of tests/realnova (it takes the lab's
lock: NOVALAB_DIR=/work/main/.novabox; start the lab first: python -m tests.realnova.novalab up).
Per server count (10, 50, 100) the servers boot on compute-1 (one request), compute-1's
nova-compute is stopped, an alert comes and fencing is confirmed, for each policy in turn:
none (final: Nova shows host_status DOWN), error (final: ERROR), evacuate (final: ACTIVE on
compute-2, no task). Between policies the host is put back and the servers reset to active.

    .venv/bin/python benchmarks/servers_on_failed_host.py [--counts 10,50,100] [--policies none,error,evacuate]

One row per count and policy (with the bridge's CPU seconds: on this shared machine the wall
times are mostly Nova's, queued behind everything else); the last line:
servers_on_failed_host n=100 policy=evacuate issued_s=<x> all_done_s=<x>
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness.bridge_process import BridgeProcess, base_config  # noqa: E402
from tests.harness.procs import group_members  # noqa: E402
from tests.realnova import servers as lab_servers  # noqa: E402
from tests.realnova.novalab import NovaLab  # noqa: E402
from tests.realnova.novalab.nova_api import api  # noqa: E402

FAILED, SPARE = "compute-1", "compute-2"
POLICIES = ("none", "error", "evacuate")
# each policy's final state, as a listing query (and a check of the detailed view, for none)
FINAL = {
    "none": ({"compute_host": FAILED}, lambda s: s.host_status == "DOWN"),
    "error": ({"compute_host": FAILED, "status": "ERROR"}, None),
    # ACTIVE is vm_state active with no task (a rebuild in progress lists as REBUILD)
    "evacuate": ({"compute_host": SPARE, "status": "ACTIVE"}, None),
}


# the steps before the servers' requests, by their timeline causes
STEPS = {"forced down": "nova-compute service forced down", "disabled": "nova-compute service disabled",
         "listed": "servers on "}


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def cpu_seconds(pgid: int) -> float:
    """User + system CPU of a process group's live members (the bridge: gunicorn and its workers)."""
    total = 0
    for pid in group_members(pgid):
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def nova_api_cpu(lab: NovaLab) -> float:
    """nova-api's CPU seconds (gunicorn and its workers): what the lab's 2 cores spend answering."""
    return cpu_seconds(lab.supervisor.pid("nova-api"))


def run(lab: NovaLab, n: int, policy: str, ids: set[str], round_no: int) -> tuple[float, float, float, float]:
    """One failure of compute-1 under `policy`: (issued_s, all_done_s) from the fencing proof, and
    the bridge's and nova-api's CPU seconds from the proof until the incident is out of service."""
    lab.supervisor.stop_many([FAILED])  # the host fails
    workdir = Path(tempfile.mkdtemp(prefix="bench-servers-"))
    config = base_config(workdir, dry_run=False, nova={"cloud": lab.cloud, "timeout": 30, "attempts": 2},
                         engine={"lease_seconds": 300, "idle_poll": 0.2},
                         servers={"policy": policy, "opt_in": {"all": True}, "concurrency": 20,
                                  "max_in_flight": 1000, "poll_interval": 0.5})
    bridge = BridgeProcess(workdir, config, env={"OS_CLIENT_CONFIG_FILE": str(lab.clouds_yaml)}).start()
    try:
        alert = json.loads(Path("tests/samples/webhook_firing_api_v2.json").read_text())
        alert["alerts"][0]["labels"]["openstack_host"] = FAILED
        alert["alerts"][0]["fingerprint"] = f"bench-servers-{round_no}"
        assert bridge.post_alert("alertmanager", alert).status_code == 202
        bridge.wait_for_incident(FAILED, "fencing", timeout=60)
        cpu_before, api_before = cpu_seconds(bridge.process.proc.pid), nova_api_cpu(lab)
        assert bridge.confirm(FAILED).status_code == 201
        proved_mono, proved_wall = time.monotonic(), datetime.now(timezone.utc)
        all_done = lab_servers.settle_time(lab, ids, proved_mono, *FINAL[policy], timeout=900)
        done = bridge.wait_for_incident(FAILED, "out_of_service", timeout=900)
        cpu, api = cpu_seconds(bridge.process.proc.pid) - cpu_before, nova_api_cpu(lab) - api_before
        proof = stamp(done["evidence"][0]["at"])
        timeline = bridge.incident(done["id"])["timeline"]
        asked = [stamp(t["at"]) for t in timeline
                 if t["cause"].startswith(("servers: asked Nova", "servers on "))]
        issued = (max(asked) - proof).total_seconds()
        steps = {step: min((stamp(t["at"]) - proof).total_seconds() for t in timeline if t["cause"].startswith(cause))
                 for step, cause in STEPS.items()}
        print("  from the proof: " + ", ".join(f"{step} +{at:.2f}s" for step, at in steps.items()), flush=True)
        all_done += (proved_wall - proof).total_seconds()  # from the proof, not from our request's answer
        bad = [r for r in done["servers"] if r["status"] not in ("done", "skipped")]
        assert not bad, bad[:3]
        return issued, all_done, cpu, api
    finally:
        bridge.kill()


def measure(lab: NovaLab, counts: str, policies: str) -> list[str]:
    """A row per count and policy, printed as it comes; returns the rows' lines."""
    rows = []
    nova = lab_servers.compute(lab)
    round_no = int(time.time())
    for n in (int(c) for c in counts.split(",")):
        lab_servers.delete_all(lab)
        for host in lab.hosts:
            lab.reset_host(host)
        ids = {s.id for s in lab_servers.boot(lab, FAILED, f"bench{n}", count=n, timeout=900)}
        for policy in policies.split(","):
            round_no += 1
            t0 = time.process_time()
            issued, all_done, cpu, api = run(lab, n, policy, ids, round_no)
            line = (f"servers_on_failed_host n={n} policy={policy} issued_s={issued:.2f} "
                    f"all_done_s={all_done:.2f}")
            rows.append(line)
            print(f"{line}  (bridge cpu {cpu:.2f}s = {cpu / n * 1000:.0f} ms/server, answering this benchmark's polls "
                  f"included; nova-api cpu {api / n * 1000:.0f} ms/server, the benchmark's reads included; "
                  f"benchmark cpu {time.process_time() - t0:.1f}s; load average {os.getloadavg()[0]:.1f})",
                  flush=True)
            lab.reset_host(FAILED)
            back = [s.id for s in nova.servers(all_projects=True) if s.id in ids and s.status != "ACTIVE"]
            took = bare_reset_state(back, "active")  # back to ACTIVE on compute-1 for the next policy
            if policy == "error" and len(back) == n:
                print(f"  ceiling: the same {n} reset-state calls from a bare client, {BARE_CONCURRENCY} at once, "
                      f"took {took:.2f}s ({n / took:.0f}/s; load average {os.getloadavg()[0]:.1f})", flush=True)
    return rows


BARE_CONCURRENCY = 20


def bare_reset_state(server_ids: list[str], state: str) -> float:
    """Seconds nova-api takes for these reset-state calls from a minimal client (plain urllib, a pool
    of threads): what nova-api itself allows, the ceiling for the bridge's error policy."""
    started = time.monotonic()
    with ThreadPoolExecutor(BARE_CONCURRENCY) as pool:
        list(pool.map(lambda server_id: api("POST", f"/servers/{server_id}/action",
                                            {"os-resetState": {"state": state}}), server_ids))
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="10,50,100")
    parser.add_argument("--policies", default=",".join(POLICIES), help="a subset, to iterate faster")
    args = parser.parse_args()
    lab = NovaLab()
    if not lab.is_running():
        print("the real Nova is not running: python -m tests.realnova.novalab up", file=sys.stderr)
        return 2
    with lab.exclusive():
        try:
            rows = measure(lab, args.counts, args.policies)
        finally:  # interrupted too: the servers gone, every host back (a stopped compute started again)
            lab_servers.delete_all(lab)
            for host in lab.hosts:
                lab.reset_host(host)
    print("note: measured on a shared 2-core machine with the whole lab on it; pessimistic", file=sys.stderr)
    print(rows[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
