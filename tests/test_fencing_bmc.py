"""The engine fencing through real simulators (suite bmc), with a fake Nova: ipmi_sim through the
ipmi driver and fence_ipmilan, fence_redfish over TLS, a real Ironic API whose node is found
through the host's Nova hypervisor, and escalation from a dead BMC to a working one."""

from __future__ import annotations

import os
import time

import pytest

from bridge import incidents as sm
from tests.fakes import FakeNova
from tests.harness.ipmi import IpmiSim, free_udp_port
from tests.harness.ironic import IronicLab
from tests.harness.redfish import RedfishEmulator, system_uuid
from tests.test_engine import alert

pytestmark = pytest.mark.bmc


class NovaWithNodes(FakeNova):
    """FakeNova that also names each host's hypervisor (an Ironic node)."""

    def __init__(self, hosts, nodes: dict[str, str]):
        super().__init__(hosts)
        self.nodes = nodes

    def hypervisor_hostname(self, host: str) -> str | None:
        return self.nodes.get(host)


@pytest.fixture
def ipmi_sim(tmp_path):
    with IpmiSim(tmp_path / "ipmi") as sim:
        yield sim


def secret(tmp_path, value: str) -> dict:
    path = tmp_path / f"pw-{len(os.listdir(tmp_path))}"
    path.write_text(value + "\n")
    return {"file": str(path)}


def fenced(make_bridge, nova, methods, host="compute-01"):
    bridge = make_bridge(nova, dry_run=False, nova={"cloud": "fake"},
                         fencing={"allow_loopback": True, "poll_interval": 0.2, "step_wait": 0.2, "methods": methods})
    assert bridge.post_alert(alert(host)).status_code == 202
    for _ in range(300):  # the engine's clock is the test's: move it on while the BMC works
        bridge.settle()
        inc = bridge.only_incident()
        if inc["state"] not in (sm.SUSPECTED, sm.FENCING):
            return bridge, inc
        bridge.clock.advance(0.2)
        time.sleep(0.05)  # real time for the BMC, not for an assertion
    raise AssertionError(f"still {inc['state']}: {[t['cause'] for t in inc['timeline']]}")


def test_a_dead_redfish_bmc_then_ipmi_sim_fences_the_host(make_bridge, tmp_path, ipmi_sim):
    nova = FakeNova(["compute-01"])
    bridge, inc = fenced(make_bridge, nova, [
        {"driver": "redfish", "address": f"http://127.0.0.1:{free_udp_port()}", "username": "admin",
         "password": secret(tmp_path, "x"), "timeout": 3, "retries": 0},
        {"driver": "ipmi", "address": ipmi_sim.address, "username": "admin",
         "password": secret(tmp_path, ipmi_sim.password), "timeout": 15}])
    assert inc["state"] == sm.OUT_OF_SERVICE and ipmi_sim.chassis_power() == "off"
    assert nova.calls == [("force_down", "compute-01"), ("disable", "compute-01")]
    shown = bridge.admin("GET", f"/v1/incidents/{inc['id']}").json["attempts"]
    # (a power-off slower than step_wait is "requested" first, then fails or proves at a check)
    assert [(a["driver"], a["result"]) for a in shown if a["result"] != "requested"] == [
        ("redfish", "failed"), ("ipmi", "proof")]
    assert ipmi_sim.password not in str(inc)


def test_fence_ipmilan_through_the_engine(make_bridge, tmp_path, ipmi_sim):
    nova = FakeNova(["compute-01"])
    _, inc = fenced(make_bridge, nova, [{
        "driver": "fence_agent", "address": "127.0.0.1", "username": "admin",
        "password": secret(tmp_path, ipmi_sim.password), "timeout": 30,
        "options": {"agent": "fence_ipmilan", "ipport": ipmi_sim.port, "lanplus": True, "cipher": 3}}])
    assert inc["state"] == sm.OUT_OF_SERVICE and inc["evidence"][0]["kind"] == "fence_agent"
    assert ipmi_sim.chassis_power() == "off"


def test_fence_redfish_over_tls_through_the_engine(make_bridge, tmp_path):
    with RedfishEmulator(tmp_path / "bmc", instant=True, tls=True) as emulator:
        nova = FakeNova(["compute-01"])
        _, inc = fenced(make_bridge, nova, [{
            "driver": "fence_agent", "address": "127.0.0.1", "username": "admin",
            "password": secret(tmp_path, emulator.password), "timeout": 30,
            "options": {"agent": "fence_redfish", "ipport": emulator.port, "ssl_insecure": True,
                        "systems_uri": f"/redfish/v1/Systems/{system_uuid('compute-01')}"}}])
    assert inc["state"] == sm.OUT_OF_SERVICE and nova.calls[0] == ("force_down", "compute-01")


def test_redfish_with_its_random_power_delay_is_waited_for(make_bridge, tmp_path):
    with RedfishEmulator(tmp_path / "bmc", instant=False) as emulator:
        nova = FakeNova(["compute-01"])
        _, inc = fenced(make_bridge, nova, [{
            "driver": "redfish", "address": emulator.url, "username": "admin",
            "password": secret(tmp_path, emulator.password), "timeout": 30,
            "options": {"system_id": system_uuid("compute-01"), "auth": "basic"}}])
    assert inc["state"] == sm.OUT_OF_SERVICE and inc["evidence"][0]["detail"]["state"] == "off"


def test_ironic_node_found_through_the_nova_hypervisor(make_bridge, tmp_path):
    with IronicLab(tmp_path / "ironic") as lab:
        nova = NovaWithNodes(["compute-01"], {"compute-01": "compute-01"})
        _, inc = fenced(make_bridge, nova, [{"driver": "ironic", "options": {"endpoint": lab.url}, "timeout": 30}])
    assert inc["state"] == sm.OUT_OF_SERVICE
    assert inc["evidence"][0]["detail"]["target"]["options"] == {"endpoint": lab.url, "node": "compute-01"}
