"""Several bridge processes on one PostgreSQL database (issue 11): every incident step runs
exactly once, a killed replica's incidents are finished by the other, and a replica that
loses its database stops acting and reports not ready."""

from __future__ import annotations

import copy
import os
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from bridge import incidents as sm
from tests.conftest import sample_json
from tests.harness.bridge_process import base_config
from tests.harness.procs import http_status, wait_until
from tests.harness.tcpproxy import TCPProxy
from tests.promtext import value

pytestmark = [pytest.mark.postgres, pytest.mark.process]

MOVES = [sm.SUSPECTED, sm.FENCING, sm.FENCED, sm.FORCED_DOWN, sm.NOVA_DOWN, sm.OUT_OF_SERVICE]


def alert(host: str) -> dict:
    body = copy.deepcopy(sample_json("webhook_firing_api_v2.json"))
    body["alerts"][0]["labels"]["openstack_host"] = host
    body["alerts"][0]["fingerprint"] = f"replicas-{host}"
    return body


def replica_config(tmp_path, url: str) -> dict:
    # dry-run without a cloud: every Nova step is recorded and counted, none is sent; short
    # leases so that a dead replica's incidents are taken over within seconds
    return base_config(tmp_path, database={"url": url}, engine={"lease_seconds": 5, "idle_poll": 0.2},
                       nova={"timeout": 1, "attempts": 1, "backoff_max": 1},
                       # the test reads 200 incidents back through the admin API: not a flood to shed
                       server={"rate_limit": {"enabled": False}})


def replica(bridge_process, tmp_path, name: str, url: str, workers: int = 2):
    workdir = tmp_path / name
    workdir.mkdir()
    metrics = workdir / "metrics"
    metrics.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    return bridge_process(replica_config(workdir, url), env=env, workers=workers)


def burst(replicas, hosts) -> None:
    """An alert, then a confirmation, per host, sent concurrently, spread over the replicas."""
    with ThreadPoolExecutor(16) as pool:
        posted = list(pool.map(lambda i: replicas[i % len(replicas)].post_alert("alertmanager", alert(hosts[i])),
                               range(len(hosts))))
        assert {r.status_code for r in posted} == {202}
        confirmed = list(pool.map(lambda i: replicas[(i + 1) % len(replicas)].confirm(hosts[i]),
                                  range(len(hosts))))
        assert {r.status_code for r in confirmed} == {201}


def all_out_of_service(bridge, n: int, timeout: float) -> list[dict]:
    def done():
        found = bridge.incidents(state=sm.OUT_OF_SERVICE, limit=1000)
        return found if len(found) == n else None
    return wait_until(f"{n} incidents out of service", done, timeout, interval=0.5)


def each_step_once(bridge, incidents: list[dict]) -> None:
    for inc in incidents:
        timeline = bridge.incident(inc["id"])["timeline"]
        moves = [t["to_state"] for t in timeline if t["from_state"] != t["to_state"]]
        assert moves == MOVES, (inc["host"], moves)


def test_two_replicas_force_each_of_200_hosts_down_exactly_once(postgres_url, bridge_process, tmp_path):
    a, b = (replica(bridge_process, tmp_path, name, postgres_url) for name in ("a", "b"))
    hosts = [f"compute-{n:03d}" for n in range(200)]
    burst([a, b], hosts)
    done = all_out_of_service(a, len(hosts), timeout=240)
    assert sorted(i["host"] for i in done) == hosts
    each_step_once(a, done)
    # every effect the two replicas' engines carried out, summed over both (and their workers)
    scrapes = [r.request("GET", "/metrics", token=None).text for r in (a, b)]
    for metric, labels in (("hostdown_bridge_nova_calls_total", {"call": "force_down", "result": "dry_run"}),
                           ("hostdown_bridge_nova_calls_total", {"call": "disable", "result": "dry_run"}),
                           ("hostdown_bridge_transitions_total", {"from_state": "fenced", "to_state": "forced_down"})):
        per_replica = [value(text, metric, **labels) for text in scrapes]
        assert sum(per_replica) == len(hosts), (metric, labels, per_replica)
    assert all(value(text, "hostdown_bridge_incidents", state="out_of_service") == 200 for text in scrapes)


def test_a_killed_replicas_incidents_are_finished_by_the_other(postgres_url, bridge_process, tmp_path):
    a, b = (replica(bridge_process, tmp_path, name, postgres_url) for name in ("a", "b"))
    hosts = [f"compute-{n:03d}" for n in range(60)]
    burst([a], hosts[:30])  # a has them in hand...
    a.kill(signal.SIGKILL)  # ...and dies, leases held, steps perhaps in flight
    burst([b], hosts[30:])
    done = all_out_of_service(b, len(hosts), timeout=120)
    assert sorted(i["host"] for i in done) == hosts
    each_step_once(b, done)


def test_a_replica_without_its_database_stops_acting_and_turns_unready(
        postgres_url, postgres_cluster, bridge_process, tmp_path):
    proxy = TCPProxy("127.0.0.1", postgres_cluster.port)
    try:
        cut_off = replica(bridge_process, tmp_path, "a",
                          postgres_url.replace(f":{postgres_cluster.port}/", f":{proxy.port}/"), workers=1)
        other = replica(bridge_process, tmp_path, "b", postgres_url)
        burst([cut_off], ["compute-001"])
        all_out_of_service(other, 1, timeout=30)

        proxy.cut()
        wait_until("the cut-off replica to report not ready",
                   lambda: http_status(cut_off.url + "/readyz") == 503, timeout=30)
        ready = cut_off.request("GET", "/readyz", token=None).json()
        assert ready["status"] == "not ready" and ready["checks"]["database"].startswith("unreachable")
        assert value(cut_off.request("GET", "/metrics", token=None).text, "hostdown_bridge_database_up") == 0

        # the other replica carries on alone; nothing the cut-off one holds is in its way
        burst([other], ["compute-002"])
        all_out_of_service(other, 2, timeout=30)
        with sa.create_engine(postgres_url).connect() as conn:
            owners = conn.execute(sa.text("SELECT count(*) FROM incidents WHERE lease_owner IS NOT NULL")).scalar()
        assert owners == 0

        proxy.restore()
        wait_until("the replica to be ready again", lambda: http_status(cut_off.url + "/readyz") == 200, timeout=30)
        wait_until("its engine to say so", lambda: "engine rounds succeed again" in cut_off.log(), timeout=30)
        # one traceback per engine thread for the whole outage, not one per round
        assert cut_off.log_path.read_text().count("engine round failed") <= 2
    finally:
        proxy.close()
