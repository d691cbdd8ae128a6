"""The failed host's servers against the real Nova: evacuate by policy, a SIGKILL mid-evacuation,
and the return to service. Servers boot on compute-1; compute-1's nova-compute is stopped (the
host failed), the alert comes and fencing is confirmed; every Nova request passes the fault
proxy, which counts them."""

from __future__ import annotations

import threading

import pytest

from bridge import incidents as sm
from tests.harness.procs import wait_until
from tests.realnova import servers as lab_servers
from tests.harness.bridge_process import base_config
from tests.realnova.test_bridge_with_real_nova import alert

pytestmark = [pytest.mark.realnova, pytest.mark.process]

FAILED, SPARE = "compute-1", "compute-2"
HA = {"HA_Enabled": "True"}
USER_LOCK = "user: keep it"


def servers_config(tmp_path, **servers):
    return base_config(tmp_path, dry_run=False, nova={"cloud": "lab", "timeout": 10, "attempts": 3, "backoff_max": 0.5},
                       engine={"lease_seconds": 60, "idle_poll": 0.5},
                       servers={"policy": "evacuate", "others": "error", "poll_interval": 0.5,
                                "return": {"wait": 180, "poll_interval": 1}, **servers})


@pytest.fixture
def failed_host(real_nova, clean_hosts):
    """compute-1 without servers, its nova-compute stopped once the test has booted what it needs."""
    lab_servers.delete_all(real_nova)
    yield lambda: real_nova.supervisor.stop_many([FAILED])
    lab_servers.delete_all(real_nova)


def test_servers_follow_the_policy_locks_stay_and_return_to_service_brings_the_host_back(
        tmp_path, real_nova, failed_host, bridge_env, bridge_process, nova_proxy):
    nova = lab_servers.compute(real_nova)
    [first] = lab_servers.boot(real_nova, FAILED, "ha-first", metadata={**HA, "HA_Priority": "9"})
    [stopped] = lab_servers.boot(real_nova, FAILED, "ha-stopped", metadata=HA)
    [locked] = lab_servers.boot(real_nova, FAILED, "ha-user-locked", metadata=HA)
    [plain] = lab_servers.boot(real_nova, FAILED, "plain")
    [broken] = lab_servers.boot(real_nova, FAILED, "ha-broken", metadata=HA)
    nova.stop_server(stopped)
    lab_servers.wait_status(real_nova, stopped.id, "SHUTOFF")
    nova.lock_server(locked, locked_reason=USER_LOCK)
    nova.reset_server_state(broken, "error")
    failed_host()

    bridge = bridge_process(servers_config(tmp_path), env=bridge_env)
    assert bridge.post_alert("alertmanager", alert(FAILED, "servers-1")).status_code == 202
    assert bridge.confirm(FAILED).status_code == 201
    done = bridge.wait_for_incident(FAILED, sm.OUT_OF_SERVICE, timeout=180)

    rows = {r["name"]: r for r in done["servers"]}
    assert {n: (r["action"], r["status"]) for n, r in rows.items()} == {
        "ha-first": ("evacuate", "done"), "ha-stopped": ("evacuate", "done"),
        "ha-user-locked": ("evacuate", "done"), "plain": ("error", "done"), "ha-broken": ("skip", "skipped")}
    assert list(rows)[0] == "ha-first" or rows["ha-first"]["priority"] == 9
    for server, status in ((first, "ACTIVE"), (stopped, "SHUTOFF"), (locked, "ACTIVE")):
        now = nova.get_server(server.id)
        assert (now.status, now.compute_host, now.task_state) == (status, SPARE, None), now.name
    assert nova.get_server(plain.id).status == "ERROR" and nova.get_server(plain.id).compute_host == FAILED
    assert nova.get_server(broken.id).compute_host == FAILED  # error is never touched
    user_locked = nova.get_server(locked.id)
    assert user_locked.is_locked and user_locked.locked_reason == USER_LOCK
    assert not nova.get_server(first.id).is_locked and not nova.get_server(stopped.id).is_locked
    # one evacuation per opted-in server; only the bridge's own locks are undone; nothing else asked
    assert lab_servers.evacuation_posts(nova_proxy) == {first.id: 1, stopped.id: 1, locked.id: 1}
    assert sorted(lab_servers.action_posts(nova_proxy, b"unlock")) == sorted([first.id, stopped.id])
    assert broken.id not in lab_servers.action_posts(nova_proxy, b"os-resetState")
    assert lab_servers.action_posts(nova_proxy, b"os-stop") == []  # Nova stopped ha-stopped again itself
    assert nova_proxy.count("GET", r"/servers/detail\?.*host=compute-1") >= 1  # listed by host, paged

    shown = bridge.cli("incidents", "show", str(done["id"]))
    assert shown.returncode == 0 and "ha-user-locked" in shown.stdout and " user-locked" in shown.stdout
    assert f"plain{' ' * 19} error    done" in shown.stdout

    # return to service: Nova refuses to un-force the host until its compute restarts
    refused_first = bridge.cli("host", "return", FAILED, "--reason", "PSU replaced")
    assert refused_first.returncode == 0, refused_first.stderr
    assert "restarted" in refused_first.stdout and "is now returning" in refused_first.stdout
    wait_until("Nova to refuse undoing force-down", lambda: any(
        t["cause"].startswith("Nova refuses to undo force-down") for t in bridge.incident(done["id"])["timeline"]),
        timeout=30)
    assert bridge.incident(done["id"])["state"] == sm.RETURNING
    real_nova.restart_compute(FAILED)  # the host is repaired: its compute starts and cleans up
    closed = bridge.wait_for_incident(FAILED, sm.CLOSED, timeout=120)
    [svc] = [s for s in nova.services(binary="nova-compute") if s.host == FAILED]
    assert (svc.state, svc.status, svc.is_forced_down) == ("up", "enabled", False)
    moves = [t["to_state"] for t in closed["timeline"] if t["from_state"] != t["to_state"]]
    assert moves == [sm.SUSPECTED, sm.FENCING, sm.FENCED, sm.FORCED_DOWN, sm.NOVA_DOWN, sm.SERVERS,
                     sm.OUT_OF_SERVICE, sm.RETURNING, sm.CLOSED]


def test_sigkill_mid_evacuation_resumes_without_issuing_any_evacuation_twice(
        tmp_path, real_nova, failed_host, bridge_env, bridge_process, nova_proxy):
    servers = lab_servers.boot(real_nova, FAILED, "ha-kill", count=6, metadata=HA)
    failed_host()
    held = sorted(s.id for s in servers)[0]
    release = threading.Event()
    # its evacuation (a batch locks every server first, then evacuates them)
    fault = nova_proxy.add("POST", rf"/servers/{held}/action", hold=release, times=1, body=b'"evacuate"')
    config = servers_config(tmp_path)
    bridge = bridge_process(config, env=bridge_env)
    bridge.post_alert("alertmanager", alert(FAILED, "servers-kill"))
    bridge.confirm(FAILED)
    wait_until("five evacuations out and one held",
               lambda: fault.held and len(lab_servers.evacuation_posts(nova_proxy)) == 5, timeout=60)
    bridge.kill()  # SIGKILL while the batch is in flight: no row of it was committed
    release.set()  # the held evacuation lands in Nova after its sender died
    wait_until("the held evacuation landed", lambda: len(lab_servers.evacuation_posts(nova_proxy)) == 6, timeout=60)

    restarted = bridge_process(config, env=bridge_env)
    done = restarted.wait_for_incident(FAILED, sm.OUT_OF_SERVICE, timeout=180)
    assert lab_servers.evacuation_posts(nova_proxy) == {s.id: 1 for s in servers}
    assert {(r["action"], r["status"]) for r in done["servers"]} == {("evacuate", "done")}
    found_issued = [r for r in done["servers"] if r["detail"].get("found_issued")]
    assert len(found_issued) == 6  # read back from Nova's migrations, not issued again
    assert lab_servers.action_posts(nova_proxy, b"lock").count(held) == 1  # its lock, not taken again
    nova = lab_servers.compute(real_nova)
    for s in servers:
        now = nova.get_server(s.id)
        assert (now.status, now.compute_host, now.is_locked) == ("ACTIVE", SPARE, False)
