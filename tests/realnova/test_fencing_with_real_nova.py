"""Fencing without a person, end to end: an Alertmanager alert, the bridge fences the host itself
(Redfish against sushy-tools' emulator) or takes a power-off alert as the proof, then forces the
host down and disables it in the real Nova. Wrong credentials, an unreachable BMC and a BMC that
never reads back off end held, with Nova untouched."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest

from bridge import incidents as sm
from tests.harness.procs import free_port
from tests.harness.redfish import RedfishEmulator, system_uuid
from tests.realnova.test_bridge_with_real_nova import alert, live_config, service

pytestmark = [pytest.mark.realnova, pytest.mark.process, pytest.mark.bmc]

# the lab's hosts as systems of the emulator
SYSTEM = {"compute-1": "compute-01", "compute-2": "compute-02"}


@pytest.fixture(scope="module")
def emulators(tmp_path_factory):
    """Instant, delayed (random 1-11 s) and stuck-on emulators, started when first asked for."""
    started: dict[str, RedfishEmulator] = {}

    def get(kind: str) -> RedfishEmulator:
        if kind not in started:
            started[kind] = RedfishEmulator(tmp_path_factory.mktemp(f"bmc-{kind}"), instant=kind != "delayed",
                                            stuck_on=kind == "stuck").start()
        return started[kind]

    yield get
    for emulator in started.values():
        emulator.stop()


def redfish_config(tmp_path, emulator: RedfishEmulator, *, password: str | None = None, address: str | None = None,
                   timeout: float = 20, retries: int = 1, then_manual: bool = False, **overrides):
    (tmp_path / "bmc.pass").write_text((password or emulator.password) + "\n")
    methods = [{"driver": "redfish", "address": address or emulator.url, "username": "admin",
                "password": {"file": str(tmp_path / "bmc.pass")},
                "options": {"system_id": "{{ system }}", "auth": "basic"}, "timeout": timeout, "retries": retries}]
    if then_manual:
        methods.append({"driver": "manual"})
    return live_config(tmp_path, fencing={
        "allow_loopback": True, "poll_interval": 0.2, "methods": methods,
        "hosts": {host: {"vars": {"system": system_uuid(system)}} for host, system in SYSTEM.items()}},
        **overrides)


def fence_test(bridge, host: str) -> subprocess.CompletedProcess:
    """`hostdown-bridge fence test HOST --config ...`: offline, with the bridge's config and cloud."""
    return subprocess.run([sys.executable, "-m", "bridge", "fence", "test", host, "--config", str(bridge.config_path)],
                          env=bridge.env, capture_output=True, text=True, timeout=60)


def nova_down_with(lab, host: str, incident: dict, kind: str) -> None:
    svc = service(lab, host)
    assert svc.is_forced_down is True and svc.state == "down" and svc.status == "disabled"
    assert svc.disabled_reason == (f"nova-hostdown-bridge: incident {incident['id']}, host down and fenced "
                                   f"({kind} by hostdown-bridge)")


@pytest.mark.parametrize("kind", ["instant", "delayed"])
def test_an_alert_then_redfish_fencing_then_nova_with_no_person(
        tmp_path, real_nova, clean_hosts, bridge_env, bridge_process, nova_proxy, emulators, kind):
    host = "compute-1" if kind == "instant" else "compute-2"
    emulator = emulators(kind)
    bridge = bridge_process(redfish_config(tmp_path, emulator), env=bridge_env)
    assert bridge.post_alert("alertmanager", alert(host, f"fence-{kind}")).status_code == 202
    done = bridge.wait_for_incident(host, sm.OUT_OF_SERVICE, timeout=60)
    nova_down_with(real_nova, host, done, "redfish")
    [proof] = done["evidence"]
    assert proof["kind"] == "redfish" and proof["detail"]["state"] == "off"
    assert proof["detail"]["target"]["address"] == emulator.url and "password" not in proof["detail"]["target"]
    assert nova_proxy.count("PUT", "/os-services") == 2
    shown = bridge.cli("incidents", "show", str(done["id"]))
    assert shown.returncode == 0 and "redfish" in shown.stdout and emulator.password not in shown.stdout
    assert emulator.password not in bridge.log()
    tested = fence_test(bridge, host)
    assert tested.returncode == 0, tested.stderr
    assert "off" in tested.stdout and emulator.password not in tested.stdout + tested.stderr


def test_a_power_off_alert_is_the_proof_with_no_bmc_and_no_person(
        tmp_path, real_nova, clean_hosts, bridge_env, bridge_process, nova_proxy):
    host = "compute-2"
    rules = live_config(tmp_path)["rules"] + [{
        "name": "bmc-powered-off", "source": "alertmanager", "match": {"alertname": "ComputeNodePoweredOff"},
        "kind": "power_off", "host": {"template": "{{ labels.openstack_host }}"}}]
    config = live_config(tmp_path, rules=rules, fencing={"methods": [{"driver": "alert", "timeout": 60},
                                                                     {"driver": "manual"}]})
    bridge = bridge_process(config, env=bridge_env)
    assert bridge.post_alert("alertmanager", alert(host, "host-down")).status_code == 202
    bridge.wait_for_incident(host, sm.FENCING)
    assert nova_proxy.count("PUT", "/os-services") == 0
    powered_off = copy.deepcopy(alert(host, "bmc-off"))
    powered_off["alerts"][0]["labels"].update(alertname="ComputeNodePoweredOff", severity="info")
    assert bridge.post_alert("alertmanager", powered_off).status_code == 202
    done = bridge.wait_for_incident(host, sm.OUT_OF_SERVICE)
    [proof] = done["evidence"]
    assert (proof["kind"], proof["actor"]) == ("alert", "alertmanager alert bmc-off")
    svc = service(real_nova, host)
    assert svc.is_forced_down is True and svc.status == "disabled"
    assert svc.disabled_reason.endswith("(alert by alertmanager alert bmc-off)")


@pytest.mark.parametrize("case", ["wrong credentials", "unreachable", "never off"])
def test_a_bmc_that_cannot_prove_off_ends_held_and_nova_is_untouched(
        tmp_path, real_nova, clean_hosts, bridge_env, bridge_process, nova_proxy, emulators, case):
    host = "compute-1"
    if case == "wrong credentials":
        config = redfish_config(tmp_path, emulators("instant"), password="not-the-password")
    elif case == "unreachable":
        config = redfish_config(tmp_path, emulators("instant"), address=f"http://127.0.0.1:{free_port()}", timeout=3)
    else:
        config = redfish_config(tmp_path, emulators("stuck"), timeout=2)
    bridge = bridge_process(config, env=bridge_env)
    assert bridge.post_alert("alertmanager", alert(host, f"bad-bmc-{case}")).status_code == 202
    held = bridge.wait_for_incident(host, sm.HELD, timeout=60)
    assert "Nova left untouched (no fencing method left after" in held["last_error"]
    failed = [(a["driver"], a["attempt"]) for a in held["attempts"] if a["result"] == "failed"]
    assert failed == [("redfish", 1), ("redfish", 2)]  # retries: 1; the second ended it, held
    assert held["evidence"] == [] and nova_proxy.count("PUT", "/os-services") == 0
    svc = service(real_nova, host)
    assert svc.is_forced_down is False and svc.status == "enabled"
    assert "not-the-password" not in bridge.log() and "not-the-password" not in str(held)
    if case == "wrong credentials":
        tested = fence_test(bridge, host)
        assert tested.returncode != 0 and "ERROR" in tested.stdout and "not-the-password" not in tested.stdout
