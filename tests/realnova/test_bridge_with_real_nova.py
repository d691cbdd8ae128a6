"""The whole pipeline, as real processes, against a real Nova API.

Alertmanager payload -> bridge (gunicorn) -> fence confirmation -> Nova reads back
forced_down / down / disabled with the bridge's reason. Nova faults are injected by a
proxy in front of nova-api; the bridge is SIGKILLed mid-step and must finish exactly once.
"""

from __future__ import annotations

import copy
import signal
import threading
from datetime import datetime

import pytest

from bridge import incidents as sm
from tests.conftest import sample_json
from tests.harness.bridge_process import base_config
from tests.harness.procs import wait_until

pytestmark = [pytest.mark.realnova, pytest.mark.process]

FORCE_DOWN_PATH = r"/os-services/(?!force-down)[^/?]+$|/os-services/force-down"


def alert(host: str, fingerprint: str) -> dict:
    body = copy.deepcopy(sample_json("webhook_firing_api_v2.json"))
    body["alerts"][0]["labels"]["openstack_host"] = host
    body["alerts"][0]["fingerprint"] = fingerprint
    body["alerts"][0]["startsAt"] = datetime.now().astimezone().isoformat()
    return body


def live_config(tmp_path, **overrides):
    return base_config(
        tmp_path, dry_run=False,
        nova={"cloud": "lab", "timeout": 2, "attempts": 3, "backoff_max": 0.5},
        engine={"lease_seconds": 10, "idle_poll": 0.5},
        **overrides)


def alerted_and_confirmed(tmp_path, bridge_process, bridge_env, host: str, fingerprint: str):
    """A live bridge on the lab, told that host is down and that it has been fenced."""
    bridge = bridge_process(live_config(tmp_path), env=bridge_env)
    assert bridge.post_alert("alertmanager", alert(host, fingerprint)).status_code == 202
    assert bridge.confirm(host).status_code == 201
    return bridge


def retry(bridge, incident: dict, reason: str) -> None:
    retried = bridge.cli("incidents", "retry", str(incident["id"]), "--reason", reason)
    assert retried.returncode == 0, retried.stderr


def service(lab, host):
    [svc] = [s for s in lab.connection().compute.services(binary="nova-compute") if s.host == host]
    return svc


def test_alert_then_confirmation_forces_the_host_down_and_disables_it(
        tmp_path, real_nova, clean_hosts, bridge_env, bridge_process, nova_proxy):
    host = "compute-1"
    bridge = bridge_process(live_config(tmp_path), env=bridge_env)
    assert bridge.post_alert("alertmanager", alert(host, "realnova-1")).status_code == 202
    incident = bridge.wait_for_incident(host, sm.FENCING)
    assert nova_proxy.count("PUT", "/os-services") == 0  # nothing before proof

    confirm = bridge.cli("fence", "confirm", host, "--reason", "BMC shows chassis off", "--operator", "alice")
    assert confirm.returncode == 0, confirm.stderr
    assert f"counts for incident {incident['id']}" in confirm.stdout
    done = bridge.wait_for_incident(host, sm.OUT_OF_SERVICE)

    svc = service(real_nova, host)
    assert svc.is_forced_down is True and svc.state == "down" and svc.status == "disabled"
    assert svc.disabled_reason == (f"nova-hostdown-bridge: incident {done['id']}, host down and fenced "
                                   "(manual by ops (alice))")
    # the other host is untouched
    other = service(real_nova, "compute-2")
    assert other.is_forced_down is False and other.status == "enabled"
    assert nova_proxy.count("PUT", "/os-services") == 2  # one force-down, one disable

    shown = bridge.cli("incidents", "show", str(done["id"]))
    assert shown.returncode == 0 and "fenced: manual by ops (alice): BMC shows chassis off" in shown.stdout
    listed = bridge.cli("incidents", "list", "--host", host)
    assert listed.returncode == 0 and " out_of_service " in listed.stdout

    # the figures the closing note asks for
    evidence_at = datetime.fromisoformat(done["evidence"][0]["at"].replace("Z", "+00:00"))
    forced = next(t for t in done["timeline"] if t["to_state"] == sm.FORCED_DOWN and t["from_state"] == sm.FENCED)
    call = next(t["detail"] for t in done["timeline"] if t["cause"].startswith("nova force_down done"))
    total = (datetime.fromisoformat(forced["at"].replace("Z", "+00:00")) - evidence_at).total_seconds()
    print(f"\nconfirmation accepted -> force-down returned: {total * 1000:.1f} ms; "
          f"Nova calls (lookup + PUT): {call['seconds'] * 1000:.1f} ms; "
          f"bridge's own work: {(total - call['seconds']) * 1000:.1f} ms")


def test_without_confirmation_nova_is_untouched_after_the_timeout(
        tmp_path, real_nova, clean_hosts, bridge_env, bridge_process, nova_proxy):
    host = "compute-2"
    bridge = bridge_process(live_config(tmp_path, fencing={"timeout": 3}), env=bridge_env)
    bridge.post_alert("alertmanager", alert(host, "realnova-2"))
    held = bridge.wait_for_incident(host, sm.HELD, timeout=20)
    assert "no fencing proof within 3s: Nova left untouched" in held["last_error"]
    svc = service(real_nova, host)
    assert svc.is_forced_down is False and svc.status == "enabled" and svc.state == "up"
    assert nova_proxy.count("PUT", "/os-services") == 0


def test_nova_500_is_retried_with_backoff(tmp_path, real_nova, clean_hosts, bridge_env, bridge_process, nova_proxy):
    host = "compute-1"
    nova_proxy.add("PUT", "/os-services", status=500, times=2)
    bridge = alerted_and_confirmed(tmp_path, bridge_process, bridge_env, host, "realnova-3")
    done = bridge.wait_for_incident(host, sm.OUT_OF_SERVICE, timeout=30)
    call = next(t["detail"] for t in done["timeline"] if t["cause"].startswith("nova force_down done"))
    assert [a["attempt"] for a in call["attempts"]] == [1, 2] and "500" in call["attempts"][0]["error"]
    assert service(real_nova, host).is_forced_down is True


def test_nova_that_keeps_failing_holds_the_incident_with_the_error_then_retry_completes(
        tmp_path, real_nova, clean_hosts, bridge_env, bridge_process, nova_proxy):
    host = "compute-1"
    nova_proxy.add("PUT", "/os-services", status=500)
    bridge = alerted_and_confirmed(tmp_path, bridge_process, bridge_env, host, "realnova-4")
    held = bridge.wait_for_incident(host, sm.HELD, timeout=30)
    assert "nova force down compute-1 failed" in held["last_error"] and "500" in held["last_error"]
    assert service(real_nova, host).is_forced_down is False
    nova_proxy.clear()
    retry(bridge, held, "nova is back")
    bridge.wait_for_incident(host, sm.OUT_OF_SERVICE, timeout=30)
    assert service(real_nova, host).is_forced_down is True


def test_nova_that_times_out_is_retried_then_held_and_the_late_puts_are_not_repeated(
        tmp_path, real_nova, clean_hosts, bridge_env, bridge_process, nova_proxy):
    host = "compute-2"
    # nova.timeout is 2 s: each of the 3 attempts times out in the bridge, and still reaches Nova 4 s late
    nova_proxy.add("PUT", "/os-services", delay=4)
    bridge = alerted_and_confirmed(tmp_path, bridge_process, bridge_env, host, "realnova-5")
    held = bridge.wait_for_incident(host, sm.HELD, timeout=40)
    assert "Timeout" in held["last_error"] or "timed out" in held["last_error"]
    wait_until("the late force-down PUTs to land", lambda: nova_proxy.count("PUT", "/os-services") == 3, timeout=20)
    svc = service(real_nova, host)
    assert svc.is_forced_down is True and svc.state == "down" and svc.status == "enabled"  # never disabled

    nova_proxy.clear()
    retry(bridge, held, "nova answers again")
    done = bridge.wait_for_incident(host, sm.OUT_OF_SERVICE, timeout=30)
    assert any(t["cause"] == "nova force_down: skipped, already forced down" for t in done["timeline"])
    assert nova_proxy.count("PUT", "/os-services") == 4  # the three late force-downs and one disable
    svc = service(real_nova, host)
    assert svc.is_forced_down and svc.status == "disabled" and f"incident {done['id']}" in svc.disabled_reason


@pytest.mark.parametrize("request_reaches_nova", [True, False], ids=["put-landed", "put-lost"])
def test_sigkill_mid_force_down_completes_exactly_once_after_restart(
        tmp_path, real_nova, clean_hosts, bridge_env, bridge_process, nova_proxy, request_reaches_nova):
    host = "compute-1"
    release = threading.Event()
    fault = nova_proxy.add("PUT", "/os-services", hold=release, drop=not request_reaches_nova, times=1)
    config = live_config(tmp_path)
    bridge = bridge_process(config, env=bridge_env)
    bridge.post_alert("alertmanager", alert(host, f"realnova-kill-{request_reaches_nova}"))
    bridge.confirm(host)
    wait_until("the force-down PUT to be in flight", lambda: fault.held, timeout=30)
    bridge.kill()  # SIGKILL, master and workers, while the step is in flight
    release.set()  # the dead process's request now lands in Nova, or is lost
    if request_reaches_nova:
        wait_until("the orphaned PUT to land", lambda: service(real_nova, host).is_forced_down, timeout=10)

    restarted = bridge_process(config, env=bridge_env)  # same database, new process
    done = restarted.wait_for_incident(host, sm.OUT_OF_SERVICE, timeout=60)
    moves = [t["to_state"] for t in done["timeline"] if t["from_state"] != t["to_state"]]
    assert moves == [sm.SUSPECTED, sm.FENCING, sm.FENCED, sm.FORCED_DOWN, sm.NOVA_DOWN, sm.OUT_OF_SERVICE]
    assert nova_proxy.count("PUT", "/os-services") == 2  # exactly one force-down and one disable reached Nova
    svc = service(real_nova, host)
    assert svc.is_forced_down and svc.status == "disabled" and f"incident {done['id']}" in svc.disabled_reason


def test_an_older_cloud_gets_the_2_11_force_down_call(
        tmp_path, real_nova, clean_hosts, bridge_env, bridge_process, nova_proxy):
    """A cloud capped below 2.53 (compute_api_version in clouds.yaml) gets PUT
    /os-services/force-down and disable-log-reason, addressed by host and binary."""
    import yaml

    clouds = yaml.safe_load(open(bridge_env["OS_CLIENT_CONFIG_FILE"]))
    clouds["clouds"]["lab"]["compute_api_version"] = "2.11"
    open(bridge_env["OS_CLIENT_CONFIG_FILE"], "w").write(yaml.safe_dump(clouds))
    host = "compute-2"
    bridge = alerted_and_confirmed(tmp_path, bridge_process, bridge_env, host, "realnova-old-cloud")
    done = bridge.wait_for_incident(host, sm.OUT_OF_SERVICE)
    assert nova_proxy.count("PUT", r"/os-services/force-down$") == 1
    assert nova_proxy.count("PUT", r"/os-services/disable-log-reason$") == 1
    assert nova_proxy.count("PUT", r"/os-services/[0-9a-f-]{36}$") == 0
    svc = service(real_nova, host)
    assert svc.is_forced_down and svc.state == "down" and svc.status == "disabled"
    assert f"incident {done['id']}" in svc.disabled_reason


def test_sigterm_mid_force_down_finishes_the_step_and_releases_the_lease_for_the_next_process(
        tmp_path, real_nova, clean_hosts, bridge_env, bridge_process, nova_proxy):
    host = "compute-2"
    release = threading.Event()
    fault = nova_proxy.add("PUT", "/os-services", hold=release, times=1)
    # a lease far longer than the test: the next process can only go on if it was released
    config = {**live_config(tmp_path), "engine": {"lease_seconds": 600, "idle_poll": 0.5}}
    bridge = bridge_process(config, env=bridge_env)
    bridge.post_alert("alertmanager", alert(host, "realnova-sigterm"))
    bridge.confirm(host)
    wait_until("the force-down PUT to be in flight", lambda: fault.held, timeout=30)
    threading.Timer(1.0, release.set).start()  # Nova answers after the SIGTERM
    bridge.kill(signal.SIGTERM)  # waits until master and workers are gone
    assert bridge.process.proc.returncode == 0, bridge.log()
    assert "lease(s) released" in bridge.log()

    restarted = bridge_process(config, env=bridge_env)  # same database, new process
    done = restarted.wait_for_incident(host, sm.OUT_OF_SERVICE, timeout=60)
    moves = [t["to_state"] for t in done["timeline"] if t["from_state"] != t["to_state"]]
    assert moves == [sm.SUSPECTED, sm.FENCING, sm.FENCED, sm.FORCED_DOWN, sm.NOVA_DOWN, sm.OUT_OF_SERVICE]
    forced = next(t for t in done["timeline"] if t["to_state"] == sm.FORCED_DOWN)
    assert forced["cause"] == "nova-compute service forced down"  # the first process's step, committed
    assert nova_proxy.count("PUT", "/os-services") == 2  # one force-down, one disable
