"""The power drivers without a simulator: state mappings, error mappings, the time-out bound,
what a fence agent is given. The simulators are in tests/test_bmc_drivers.py (suite bmc)."""

from __future__ import annotations

import http.server
import json
import socket
import sys
import threading
from types import SimpleNamespace

import pytest
import sushy

from bridge.fencing import POWER_DRIVERS, fence_agent
from bridge.fencing.base import OFF, ON, UNKNOWN, FenceError, FenceTarget, Secret
from bridge.fencing.bmccall import bounded
from bridge.fencing.fence_agent import FenceAgentPower, stdin_lines
from bridge.fencing.ipmi import IpmiPower, host_port
from bridge.fencing.ironic import IronicPower
from bridge.fencing.redfish import RedfishPower, base_url

PASSWORD = "pw-Zq7-never-shown"


def target(method="redfish", address="127.0.0.1:1", timeout=5.0, **options) -> FenceTarget:
    return FenceTarget("compute-01", method, address, "admin", Secret(PASSWORD), options, timeout=timeout)


def test_every_power_driver_is_registered_under_its_name():
    assert POWER_DRIVERS == {"redfish": RedfishPower, "ipmi": IpmiPower,
                             "fence_agent": FenceAgentPower, "ironic": IronicPower}


# ---- the bound ---------------------------------------------------------------------------

def test_a_call_that_never_returns_fails_at_the_time_out_while_it_still_hangs():
    release = threading.Event()
    with pytest.raises(FenceError, match=r"redfish power state of compute-01 at 127.0.0.1:1: no answer within 0.2s"):
        bounded(target(timeout=0.2), "power state", release.wait)
    assert not release.is_set()  # the call had not returned: the bound, not the call, ended the wait
    release.set()


def test_any_library_error_becomes_a_fence_error_without_the_password():
    def fails():
        raise RuntimeError(f"login as admin:{PASSWORD} refused")

    with pytest.raises(FenceError) as e:
        bounded(target(), "power off", fails)
    assert str(e.value) == "redfish power off of compute-01 at 127.0.0.1:1: RuntimeError: login as admin:*** refused"


# ---- redfish -------------------------------------------------------------------------------

@pytest.mark.parametrize("state, read", [(sushy.PowerState.OFF, OFF), (sushy.PowerState.ON, ON),
                                         (sushy.PowerState.POWERING_OFF, ON), (sushy.PowerState.POWERING_ON, ON),
                                         (None, UNKNOWN), ("Paused", UNKNOWN)])
def test_redfish_only_off_reads_as_off(monkeypatch, state, read):
    monkeypatch.setattr(RedfishPower, "_system", lambda self, t: SimpleNamespace(power_state=state))
    assert RedfishPower().power_state(target()) == read


def test_redfish_addresses_without_a_scheme_are_https():
    assert base_url("10.0.0.5") == "https://10.0.0.5"
    assert base_url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"


def test_redfish_refuses_an_unknown_auth_before_connecting():
    with pytest.raises(FenceError, match="auth must be one of session, basic, auto, not 'digest'"):
        RedfishPower().power_state(target(auth="digest"))


class _Answers(http.server.BaseHTTPRequestHandler):
    body = b"{}"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def bmc_answering():
    """An HTTP server on a free port that answers every request with the given body."""
    servers = []

    def start(body: bytes) -> str:
        handler = type("Handler", (_Answers,), {"body": body})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", json.dumps({"Systems": 5}).encode(),
                                  json.dumps({"@odata.id": "/redfish/v1/", "Systems": {"@odata.id": "/x"}}).encode()])
def test_redfish_unexpected_json_is_a_fence_error_naming_the_address(bmc_answering, body):
    url = bmc_answering(body)
    with pytest.raises(FenceError, match=f"redfish power state of compute-01 at {url}: "):
        RedfishPower().power_state(target(address=url, auth="basic"))


def test_redfish_connection_refused_is_a_fence_error(unused_port):
    with pytest.raises(FenceError, match=f"at http://127.0.0.1:{unused_port}: ConnectionError"):
        RedfishPower().power_off(target(address=f"http://127.0.0.1:{unused_port}"))


def test_a_redfish_bmc_that_accepts_and_never_answers_fails_at_the_time_out(silent_tcp):
    with pytest.raises(FenceError, match="no answer within 1s|ConnectionError"):
        RedfishPower().power_state(target(address=f"http://127.0.0.1:{silent_tcp}", timeout=1))


@pytest.fixture
def unused_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


@pytest.fixture
def silent_tcp():
    """A port that accepts connections and never says a word."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


# ---- ipmi ----------------------------------------------------------------------------------

@pytest.mark.parametrize("address, parsed", [("10.0.0.5", ("10.0.0.5", 623)), ("bmc-1.lab:6230", ("bmc-1.lab", 6230)),
                                             ("[fd00::5]:6230", ("fd00::5", 6230)), ("fd00::5", ("fd00::5", 623)),
                                             ("[fd00::5]", ("fd00::5", 623))])
def test_ipmi_addresses(address, parsed):
    assert host_port(address) == parsed


@pytest.mark.parametrize("address", ["", "10.0.0.5:", "10.0.0.5:x", "10.0.0.5:70000", ":623", "[fd00::5]:0"])
def test_ipmi_refuses_addresses_that_are_not_host_port(address):
    with pytest.raises(FenceError, match="ipmi address of compute-01 .*not a host\\[:port\\]"):
        IpmiPower().power_state(target(method="ipmi", address=address))


# ---- ironic --------------------------------------------------------------------------------

@pytest.mark.parametrize("state, read", [("power off", OFF), ("power on", ON), (None, UNKNOWN), ("error", UNKNOWN),
                                         ("soft power off", UNKNOWN)])
def test_ironic_only_power_off_reads_as_off(monkeypatch, state, read):
    nodes = SimpleNamespace(get_node=lambda node: SimpleNamespace(power_state=state))
    monkeypatch.setattr(IronicPower, "_connection", lambda self, t: SimpleNamespace(baremetal=nodes))
    assert IronicPower().power_state(target(method="ironic", address=None, node="n1")) == read


def test_ironic_needs_a_node_and_a_cloud_or_endpoint():
    with pytest.raises(FenceError, match="options.node"):
        IronicPower().power_off(target(method="ironic", address=None, endpoint="http://127.0.0.1:1"))
    with pytest.raises(FenceError, match="set options.cloud, or options.endpoint"):
        IronicPower().power_off(target(method="ironic", address=None, node="n1"))


# ---- fence agents --------------------------------------------------------------------------

FAKE_AGENT = """#!{python}
import json, os, sys
params = sys.stdin.read()
with open({record!r}, "a") as f:
    f.write(json.dumps({{"argv": sys.argv, "stdin": params, "env": dict(os.environ)}}) + "\\n")
action = dict(line.split("=", 1) for line in params.splitlines()).get("action")
{behaviour}
"""


@pytest.fixture
def fake_agent(tmp_path, monkeypatch):
    """fence_fake in a directory of its own, found by the driver; records what it was given."""
    record = tmp_path / "calls.jsonl"
    monkeypatch.setattr(fence_agent, "SEARCH_PATH", str(tmp_path))

    def install(behaviour: str):
        agent = tmp_path / "fence_fake"
        agent.write_text(FAKE_AGENT.format(python=sys.executable, record=str(record), behaviour=behaviour))
        agent.chmod(0o755)
        return lambda: [json.loads(line) for line in record.read_text().splitlines()]

    return install


def agent_target(**options):
    return target(method="fence_agent", address="10.0.0.5", agent="fence_fake", **options)


def test_a_fence_agent_gets_its_parameters_on_stdin_and_nothing_in_argv_or_env(fake_agent, monkeypatch):
    monkeypatch.setenv("HOSTDOWN_BRIDGE_ADMIN_TOKEN", "bridge-token")
    calls = fake_agent("print('Status: OFF'); sys.exit(2)")
    assert FenceAgentPower().power_state(agent_target(lanplus=True, ipport=6230, cipher=3)) == OFF
    (call,) = calls()
    assert call["argv"][1:] == []
    assert call["stdin"] == ("action=status\nip=10.0.0.5\nusername=admin\n"
                             f"lanplus=1\nipport=6230\ncipher=3\npassword={PASSWORD}\n")
    assert "bridge-token" not in json.dumps(call["env"])


@pytest.mark.parametrize("code, output, read", [(2, "Status: OFF", OFF), (0, "Status: ON", ON),
                                                (0, "Status: OFF", UNKNOWN), (2, "Status: ON", UNKNOWN),
                                                (2, "", UNKNOWN), (0, "Status: ON\\nStatus: OFF", UNKNOWN)])
def test_a_fence_agent_reads_off_only_when_exit_code_and_output_agree(fake_agent, code, output, read):
    fake_agent(f"print({output!r}.replace('\\\\n', chr(10))); sys.exit({code})")
    assert FenceAgentPower().power_state(agent_target()) == read


def test_a_failing_fence_agent_is_a_fence_error_with_its_output_but_no_password(fake_agent):
    fake_agent(f"print('Failed: login as admin/{PASSWORD} refused', file=sys.stderr); sys.exit(1)")
    with pytest.raises(FenceError) as e:
        FenceAgentPower().power_off(agent_target())
    assert "agent exited 1: Failed: login as admin/*** refused" in str(e.value)
    assert PASSWORD not in str(e.value)


def test_a_fence_agent_that_hangs_is_killed_at_the_time_out(fake_agent, tmp_path):
    calls = fake_agent(f"open({str(tmp_path / 'pid')!r}, 'w').write(str(os.getpid())); import time; time.sleep(600)")
    with pytest.raises(FenceError, match="fence_agent power off of compute-01 at 10.0.0.5: agent gave no answer within 3s"):
        FenceAgentPower().power_off(target(method="fence_agent", address="10.0.0.5", timeout=3, agent="fence_fake"))
    assert len(calls()) == 1
    pid = int((tmp_path / "pid").read_text())
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("agent", ["fence_ipmilan; rm -rf /", "../fence_x", "ipmitool", "fence_", "", "fence_A"])
def test_only_fence_agent_names_are_run(agent):
    with pytest.raises(FenceError, match="options.agent must name a fence agent"):
        FenceAgentPower().power_state(target(method="fence_agent", agent=agent))


def test_an_agent_that_is_not_installed_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(fence_agent, "SEARCH_PATH", str(tmp_path))
    with pytest.raises(FenceError, match="fence_nothere is not installed"):
        FenceAgentPower().power_state(target(method="fence_agent", agent="fence_nothere"))


@pytest.mark.parametrize("options, refused", [
    ({"verbose": True}, "option 'verbose' is not passed"),
    ({"password_script": "/tmp/x"}, "option 'password_script' is not passed"),
    ({"ipport": "623\naction=on"}, "ipport has characters"),
    ({"systems_uri": "/redfish/v1/Systems/1 extra"}, "systems_uri has characters"),
])
def test_options_that_could_change_what_the_agent_does_are_refused(options, refused):
    with pytest.raises(FenceError, match=refused):
        stdin_lines(agent_target(**options), "off")


def test_an_address_or_username_cannot_add_a_line():
    bad = FenceTarget("compute-01", "fence_agent", "10.0.0.5\naction=on", "admin", Secret(PASSWORD),
                      {"agent": "fence_fake"})
    with pytest.raises(FenceError, match="ip has characters"):
        stdin_lines(bad, "off")
    bad = FenceTarget("compute-01", "fence_agent", "10.0.0.5", "admin", Secret("pw\naction=on"), {"agent": "fence_fake"})
    with pytest.raises(FenceError, match="fence_agent password of compute-01 at 10.0.0.5: it contains a line break"):
        stdin_lines(bad, "off")


class _RefusingSystem:
    """A Redfish system whose BMC answers ForceOff with an HTTP error."""

    def __init__(self, error, state_after):
        self.error, self.power_state, self._after = error, sushy.PowerState.ON, state_after

    def reset_system(self, value):
        raise self.error

    def refresh(self, force=False):
        self.power_state = self._after


def _http_error(cls, status):
    response = SimpleNamespace(status_code=status, json=lambda: {"error": {"message": "Server is already powered OFF"}})
    return cls("POST", "https://bmc/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", response)


def test_redfish_a_bmc_that_refuses_force_off_of_a_host_already_off_is_no_failure(monkeypatch):
    refusing = _RefusingSystem(_http_error(sushy.exceptions.HTTPError, 409), sushy.PowerState.OFF)
    monkeypatch.setattr(RedfishPower, "_system", lambda self, t: refusing)
    RedfishPower().power_off(target())


@pytest.mark.parametrize("error, after", [(_http_error(sushy.exceptions.HTTPError, 409), sushy.PowerState.ON),
                                          (_http_error(sushy.exceptions.AccessError, 403), sushy.PowerState.OFF)])
def test_redfish_a_refused_force_off_is_a_fence_error_unless_the_host_reads_off(monkeypatch, error, after):
    monkeypatch.setattr(RedfishPower, "_system", lambda self, t: _RefusingSystem(error, after))
    with pytest.raises(FenceError, match="redfish power off of compute-01 at 127.0.0.1:1: .*Error: HTTP POST"):
        RedfishPower().power_off(target())
