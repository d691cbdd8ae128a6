"""The power drivers against real simulators (suite bmc): sushy-tools' Redfish emulator (with its
random 1-11 s power delay, instant, over TLS, and stuck on), OpenIPMI's ipmi_sim, the
ClusterLabs agents fence_ipmilan and fence_redfish, and a real Ironic API.

Proof is a read-back of off: each power-off is followed by reading the state until it is off.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from bridge.fencing import fence_agent
from bridge.fencing.base import OFF, ON, FenceError, FenceTarget, Secret
from bridge.fencing.fence_agent import FenceAgentPower
from bridge.fencing.ipmi import IpmiPower
from bridge.fencing.ironic import IronicPower
from bridge.fencing.redfish import RedfishPower
from tests.harness.ipmi import IpmiSim, free_udp_port
from tests.harness.ironic import IronicLab
from tests.harness.procs import free_port, wait_until
from tests.harness.redfish import RedfishEmulator, system_uuid

pytestmark = pytest.mark.bmc


def reads_off(driver, target: FenceTarget, timeout: float = 60) -> str:
    """Reads the power state until it is off (the fake driver may take 11 s)."""
    return wait_until(f"{target.host} read back off", lambda: driver.power_state(target) == OFF and OFF,
                      timeout, interval=0.2)


def no_secret_anywhere(password: str, error: FenceError, caplog) -> None:
    assert password not in str(error)
    assert password not in caplog.text


@pytest.fixture(autouse=True)
def all_logs(caplog):
    caplog.set_level(logging.DEBUG)  # every library's debug log too: none may show a password


# ---- redfish -------------------------------------------------------------------------------

def _emulator(tmp_path_factory, name, **kw):
    emulator = RedfishEmulator(tmp_path_factory.mktemp(name), **kw).start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def redfish_instant(tmp_path_factory):
    yield from _emulator(tmp_path_factory, "redfish-instant", instant=True)


@pytest.fixture(scope="module")
def redfish_delayed(tmp_path_factory):
    yield from _emulator(tmp_path_factory, "redfish-delayed", instant=False)


@pytest.fixture(scope="module")
def redfish_tls(tmp_path_factory):
    yield from _emulator(tmp_path_factory, "redfish-tls", instant=True, tls=True)


@pytest.fixture(scope="module")
def redfish_stuck(tmp_path_factory):
    yield from _emulator(tmp_path_factory, "redfish-stuck", instant=True, stuck_on=True)


def redfish(emulator: RedfishEmulator, system: str, password: str | None = None, **options) -> FenceTarget:
    return FenceTarget(system, "redfish", emulator.url, "admin", Secret(password or emulator.password),
                       {"system_id": system_uuid(system), **options}, timeout=15)


@pytest.mark.parametrize("emulator", ["redfish_instant", "redfish_delayed"])
def test_redfish_force_off_then_reads_back_off(request, emulator):
    emulator = request.getfixturevalue(emulator)
    target = redfish(emulator, "compute-01")
    assert RedfishPower().power_state(target) == ON
    RedfishPower().power_off(target)
    assert reads_off(RedfishPower(), target) == OFF
    RedfishPower().power_off(target)  # already off: harmless, and it stays off
    assert reads_off(RedfishPower(), target) == OFF


def test_redfish_finds_a_system_by_name_and_with_basic_auth(redfish_instant):
    target = redfish(redfish_instant, "compute-06", auth="basic")
    assert RedfishPower().power_state(replace(target, options={"system_id": "compute-06"})) == ON
    assert RedfishPower().power_state(target) == ON


def test_redfish_without_system_id_needs_exactly_one_system(redfish_instant):
    target = FenceTarget("compute-06", "redfish", redfish_instant.url, "admin", Secret(redfish_instant.password))
    with pytest.raises(FenceError, match=f"at {redfish_instant.url}: UnknownDefaultError"):
        RedfishPower().power_state(target)


def test_redfish_session_auth_fails_where_the_bmc_has_no_session_service(redfish_instant):
    # sushy-tools has no SessionService: auth=session must fail there, not fall back to basic
    with pytest.raises(FenceError, match="SessionService/Sessions returned code 401"):
        RedfishPower().power_state(redfish(redfish_instant, "compute-06", auth="session"))


def test_redfish_wrong_credentials_are_a_fence_error_without_the_password(redfish_instant, caplog):
    wrong = "wrong-" + redfish_instant.password
    with pytest.raises(FenceError, match=f"at {redfish_instant.url}: AccessError: .* 401") as e:
        RedfishPower().power_off(redfish(redfish_instant, "compute-05", password=wrong))
    no_secret_anywhere(wrong, e.value, caplog)
    assert RedfishPower().power_state(redfish(redfish_instant, "compute-05")) == ON  # nothing was switched


def test_redfish_verifies_tls_by_default_and_trusts_a_ca_bundle(redfish_tls, caplog):
    with pytest.raises(FenceError, match="CERTIFICATE_VERIFY_FAILED"):
        RedfishPower().power_state(redfish(redfish_tls, "compute-02"))
    target = redfish(redfish_tls, "compute-02", ca_bundle=str(redfish_tls.ca_file))
    RedfishPower().power_off(target)
    assert reads_off(RedfishPower(), target) == OFF
    assert RedfishPower().power_state(redfish(redfish_tls, "compute-06", verify=False)) == ON
    assert redfish_tls.password not in caplog.text


def test_a_redfish_bmc_that_accepts_force_off_but_stays_on_never_reads_off(redfish_stuck):
    target = redfish(redfish_stuck, "compute-01")
    RedfishPower().power_off(target)  # 204, as if done
    reads = [RedfishPower().power_state(target) for _ in range(10)]
    assert reads == [ON] * 10


# ---- ipmi ----------------------------------------------------------------------------------

@pytest.fixture
def ipmi_sim(tmp_path):
    with IpmiSim(tmp_path / "ipmi") as sim:
        yield sim


def ipmi(sim: IpmiSim, password: str | None = None, method="ipmi", **options) -> FenceTarget:
    return FenceTarget("compute-01", method, sim.address, "admin", Secret(password or sim.password), options,
                       timeout=15)


def test_ipmi_chassis_off_then_reads_back_off(ipmi_sim, caplog):
    target = ipmi(ipmi_sim)
    assert IpmiPower().power_state(target) == ON
    IpmiPower().power_off(target)
    assert reads_off(IpmiPower(), target) == OFF
    assert ipmi_sim.chassis_power() == "off"  # ipmitool sees it too
    IpmiPower().power_off(target)  # already off: harmless
    assert IpmiPower().power_state(target) == OFF
    assert ipmi_sim.password not in caplog.text


def test_ipmi_wrong_credentials_are_a_fence_error_without_the_password(ipmi_sim, caplog):
    wrong = "wrong" + ipmi_sim.password[:8]
    with pytest.raises(FenceError, match=f"ipmi power off of compute-01 at {ipmi_sim.address}: ") as e:
        IpmiPower().power_off(ipmi(ipmi_sim, password=wrong))
    no_secret_anywhere(wrong, e.value, caplog)
    assert ipmi_sim.chassis_power() == "on"
    assert IpmiPower().power_state(ipmi(ipmi_sim)) == ON  # the failed session spoils nothing for the right one


def test_an_ipmi_bmc_that_never_answers_is_a_fence_error_at_the_time_out():
    target = FenceTarget("compute-01", "ipmi", f"127.0.0.1:{free_udp_port()}", "admin", Secret("x"), timeout=3)
    with pytest.raises(FenceError, match="ipmi power state of compute-01 at 127.0.0.1:"):
        IpmiPower().power_state(target)


# ---- fence agents --------------------------------------------------------------------------

def fence_ipmilan(sim: IpmiSim, password: str | None = None) -> FenceTarget:
    return FenceTarget("compute-01", "fence_agent", "127.0.0.1", "admin", Secret(password or sim.password),
                       {"agent": "fence_ipmilan", "ipport": sim.port, "lanplus": True, "cipher": 3}, timeout=30)


@pytest.fixture
def agent_cmdlines(monkeypatch):
    """Every command line the fence agent process showed in /proc while it ran."""
    seen: list[bytes] = []
    real_popen = fence_agent.subprocess.Popen

    def popen(argv, **kw):
        proc = real_popen(argv, **kw)

        def watch():
            while os.path.exists(f"/proc/{proc.pid}") and proc.returncode is None:
                try:
                    line = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
                except OSError:
                    break
                if line and line not in seen:
                    seen.append(line)

        threading.Thread(target=watch, daemon=True).start()
        return proc

    monkeypatch.setattr(fence_agent.subprocess, "Popen", popen)
    return seen


def test_fence_ipmilan_powers_off_ipmi_sim_with_the_password_never_in_argv(ipmi_sim, agent_cmdlines, caplog):
    target = fence_ipmilan(ipmi_sim)
    assert FenceAgentPower().power_state(target) == ON
    FenceAgentPower().power_off(target)  # the agent itself waits for off
    assert FenceAgentPower().power_state(target) == OFF
    assert ipmi_sim.chassis_power() == "off"
    assert any(b"fence_ipmilan" in line for line in agent_cmdlines)
    assert not any(ipmi_sim.password.encode() in line for line in agent_cmdlines)
    assert ipmi_sim.password not in caplog.text


def test_fence_ipmilan_wrong_credentials_are_a_fence_error_without_the_password(ipmi_sim, caplog):
    wrong = "wrong" + ipmi_sim.password[:8]
    with pytest.raises(FenceError, match="fence_agent power state of compute-01 at 127.0.0.1: agent exited 1") as e:
        FenceAgentPower().power_state(fence_ipmilan(ipmi_sim, password=wrong))
    no_secret_anywhere(wrong, e.value, caplog)


def test_fence_ipmilan_against_a_bmc_that_never_answers_is_a_fence_error():
    target = FenceTarget("compute-01", "fence_agent", "127.0.0.1", "admin", Secret("x"),
                         {"agent": "fence_ipmilan", "ipport": free_udp_port(), "lanplus": True}, timeout=5)
    with pytest.raises(FenceError, match="fence_agent power state of compute-01 at 127.0.0.1: agent"):
        FenceAgentPower().power_state(target)


def test_fence_redfish_over_tls_powers_off_the_emulator(redfish_tls, agent_cmdlines):
    target = FenceTarget("compute-03", "fence_agent", "127.0.0.1", "admin", Secret(redfish_tls.password),
                         {"agent": "fence_redfish", "ipport": redfish_tls.port, "ssl_insecure": True,
                          "systems_uri": f"/redfish/v1/Systems/{system_uuid('compute-03')}"}, timeout=30)
    assert FenceAgentPower().power_state(target) == ON
    FenceAgentPower().power_off(target)
    assert reads_off(FenceAgentPower(), target) == OFF
    assert not any(redfish_tls.password.encode() in line for line in agent_cmdlines)


# ---- ironic --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ironic(tmp_path_factory):
    with IronicLab(tmp_path_factory.mktemp("ironic")) as lab:
        yield lab


def ironic_node(lab: IronicLab, node: str) -> FenceTarget:
    return FenceTarget(node, "ironic", None, options={"node": node, "endpoint": lab.url}, timeout=15)


def test_ironic_powers_off_a_node_and_reads_back_off(ironic):
    target = ironic_node(ironic, "compute-01")
    assert IronicPower().power_state(target) == ON
    IronicPower().power_off(target)
    assert reads_off(IronicPower(), target) == OFF
    IronicPower().power_off(target)  # already off: harmless
    assert reads_off(IronicPower(), target) == OFF


def test_ironic_an_unknown_node_is_a_fence_error_naming_it(ironic):
    with pytest.raises(FenceError, match="ironic power off of compute-09 .*Node compute-09 could not be found"):
        IronicPower().power_off(ironic_node(ironic, "compute-09"))


def test_ironic_a_closed_port_is_a_fence_error():
    target = FenceTarget("compute-01", "ironic", None, options={"node": "n1", "endpoint": f"http://127.0.0.1:{free_port()}"},
                         timeout=5)
    with pytest.raises(FenceError, match="ironic power state of compute-01 .*Unable to find a version discovery"):
        IronicPower().power_state(target)
