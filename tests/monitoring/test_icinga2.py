"""Icinga 2 with the shipped objects (alert_templates/icinga2/) feeds the real bridge."""

import re

import pytest

from tests.harness.procs import run
from tests.monitoring.harness import (
    SCRIPT_PATH, TEMPLATES, Daemon, assert_nova_untouched, capture, last_id, now, report, signals, wait_for_signal,
)
from tests.monitoring.test_nagios import CHECK, set_state

pytestmark = pytest.mark.monitoring

MAIN = """include <itl>
const PluginDir = "/usr/lib/nagios/plugins"
include <plugins>
object CheckerComponent "checker" { }
object NotificationComponent "notification" { }
object FileLogger "main-log" { severity = "information"; path = LogDir + "/icinga2.log" }
include "hostdown-bridge.conf"

object CheckCommand "state-file" {
  command = [ "W/bin/check_state.sh", "W/state/$host.name$", "W/canary/injected" ]
}
template Host "test-compute" {
  check_command = "state-file"
  max_check_attempts = 3
  check_interval = 2s
  retry_interval = 1s
}
object Host "compute-01" { import "test-compute"; import "hostdown-bridge-compute"; address = "127.0.0.1" }
object Host "compute-02" {
  import "test-compute"
  import "hostdown-bridge-compute"
  address = "127.0.0.1"
  max_check_attempts = 6
  vars.openstack_host = "compute-02.cloud.example"
}
"""


def start_icinga2(bridge_server, workdir, stack):
    w = workdir.path
    dirs = {name: w / "var" / name for name in ("lib", "log", "cache", "spool", "run")}
    for path in (*dirs.values(), w / "canary", w / "state"):
        path.mkdir(parents=True)
    workdir.write("bin/check_state.sh", CHECK, 0o755)
    script = workdir.script()
    token = workdir.token_for(bridge_server, "nagios")
    shipped = (TEMPLATES / "icinga2" / "hostdown-bridge.conf").read_text()
    for const, value in (("HostdownBridgeUrl", f"{bridge_server.url}/v1/alerts/icinga2"),
                         ("HostdownBridgeTokenFile", token), ("HostdownBridgeScript", script)):
        shipped = re.sub(rf'const {const} = ".*"', f'const {const} = "{value}"', shipped)
    assert f'"{SCRIPT_PATH}"' not in shipped
    workdir.write("etc/hostdown-bridge.conf", shipped)
    workdir.write("etc/icinga2.conf", MAIN.replace('"W/', f'"{w}/'))
    run("chown", "-R", "nagios:nagios", w / "var", w / "canary")
    argv = ["icinga2", "daemon", "-c", w / "etc/icinga2.conf", f"-DConfigDir={w / 'etc'}",
            f"-DDataDir={dirs['lib']}", f"-DLogDir={dirs['log']}", f"-DCacheDir={dirs['cache']}",
            f"-DSpoolDir={dirs['spool']}", f"-DInitRunDir={dirs['run']}", "-DRunAsUser=nagios", "-DRunAsGroup=nagios"]
    run(*argv, "-C")
    icinga = stack.start(Daemon("icinga2", argv, workdir))
    # Icinga runs the event handler once per host at start (UP, HARD): both checked, bridge reached
    for host in ("compute-01", "compute-02"):
        wait_for_signal(bridge_server, f"Icinga 2 start-up event for {host}",
                        lambda s: s["labels"]["host"] == host and s["status"] == "resolved", 60)
    icinga.check()
    return icinga


def test_hard_down_opens_an_incident_soft_attempts_record_only_recovery_cancels(bridge_server, workdir, stack):
    start_icinga2(bridge_server, workdir, stack)
    after, fault = last_id(bridge_server), now()
    set_state(workdir, "compute-01", 2)
    soft = wait_for_signal(bridge_server, "SOFT DOWN", lambda s: s["labels"]["state_type"] == "SOFT", 30, after)
    hard = wait_for_signal(bridge_server, "HARD DOWN", lambda s: s["labels"]["state_type"] == "HARD", 30, after)
    report("icinga2", "host check DOWN (3 attempts, 1 s apart)", fault, hard)
    assert (soft["kind"], soft["incident_id"]) == ("unmatched", None)
    assert (hard["fingerprint"], hard["status"], hard["rule"], hard["candidate_host"]) == \
        ("compute-01/HARD", "firing", "icinga2-host-down", "compute-01")
    assert hard["labels"]["attempt"] == "1"  # Icinga restarts the count at the HARD state
    assert "openstack_host" not in hard["labels"]  # the argument with an unresolved macro was left out
    assert "$(touch" in hard["annotations"]["output"] and not (workdir / "canary" / "injected").exists()
    incident = bridge_server.wait_for_incident("compute-01", "fencing")
    assert incident["timeline"][0]["detail"]["signal_id"] == hard["id"]

    after, repair = last_id(bridge_server), now()
    set_state(workdir, "compute-01", 0)
    resolved = wait_for_signal(bridge_server, "RECOVERY", lambda s: s["status"] == "resolved", 30, after)
    report("icinga2", "host check UP", repair, resolved)
    assert resolved["fingerprint"] == "compute-01/HARD"
    assert_nova_untouched(bridge_server.wait_for_incident("compute-01", "cancelled"))
    capture(bridge_server, "icinga2")


def test_soft_down_that_recovers_records_signals_and_starts_nothing(bridge_server, workdir, stack):
    start_icinga2(bridge_server, workdir, stack)
    after = last_id(bridge_server)
    set_state(workdir, "compute-02", 2)
    soft = wait_for_signal(bridge_server, "SOFT DOWN", lambda s: s["status"] == "firing", 30, after)
    set_state(workdir, "compute-02", 0)
    up = wait_for_signal(bridge_server, "SOFT recovery", lambda s: s["status"] == "resolved", 30, after)
    assert soft["labels"]["state_type"] == "SOFT" and soft["labels"]["openstack_host"] == "compute-02.cloud.example"
    # Icinga reports the recovery from a SOFT state as UP/HARD (Nagios: UP/SOFT): it matches
    # the host-down rule as a resolved alert, with nothing firing to resolve
    assert (up["labels"]["state"], up["labels"]["state_type"]) == ("UP", "HARD")
    acted_on = [s for s in signals(bridge_server) if s["id"] > after and s["status"] == "firing" and s["rule"]]
    assert acted_on == []
    assert bridge_server.incidents() == []
