"""Nagios Core 4 with the shipped commands (alert_templates/nagios/) feeds the real bridge."""

import re

import pytest

from tests.harness.procs import run, wait_until
from tests.monitoring.harness import (
    SCRIPT_PATH, TEMPLATES, Daemon, assert_nova_untouched, capture, last_id, now, repeats, report, signals,
    wait_for_signal,
)

pytestmark = pytest.mark.monitoring

# The check prints hostile text when DOWN: if any of it reached a shell, the canary would exist.
CHECK = """#!/bin/sh
if [ "$(cat "$1" 2>/dev/null)" = 2 ]; then
  echo "CRITICAL - down '; touch $2; echo ' \\$(touch $2) \\`touch $2\\` \\"q\\" | touch $2 ; x"
  exit 2
fi
echo "OK - up"
"""

MAIN = """log_file={w}/var/nagios.log
cfg_file={w}/etc/hostdown-bridge.cfg
cfg_file={w}/etc/objects.cfg
object_cache_file={w}/var/objects.cache
precached_object_file={w}/var/objects.precache
resource_file={w}/etc/resource.cfg
status_file={w}/var/status.dat
status_update_interval=1
nagios_user=nagios
nagios_group=nagios
check_external_commands=1
command_file={w}/var/rw/nagios.cmd
lock_file={w}/var/nagios.lock
temp_file={w}/var/nagios.tmp
temp_path={w}/var/tmp
query_socket={w}/var/rw/nagios.qh
check_result_path={w}/var/spool/checkresults
retain_state_information=0
use_syslog=0
log_notifications=1
log_host_retries=1
log_event_handlers=1
log_initial_states=1
interval_length=1
check_result_reaper_frequency=1
max_host_check_spread=1
max_service_check_spread=1
cached_host_check_horizon=0
enable_predictive_host_dependency_checks=0
enable_predictive_service_dependency_checks=0
execute_host_checks=1
enable_notifications=1
enable_event_handlers=1
enable_environment_macros=1
enable_flap_detection=0
check_for_updates=0
bare_update_check=0
"""
# interval_length=1: intervals in seconds. enable_environment_macros=1: the script reads
# plugin output from $NAGIOS_HOSTOUTPUT. No illegal_macro_output_chars: nothing is stripped,
# so the test shows that the command itself is safe.

OBJECTS = """define timeperiod {{
    timeperiod_name 24x7
    alias           always
    sunday 00:00-24:00
    monday 00:00-24:00
    tuesday 00:00-24:00
    wednesday 00:00-24:00
    thursday 00:00-24:00
    friday 00:00-24:00
    saturday 00:00-24:00
}}
define command {{
    command_name    check_state
    command_line    {w}/bin/check_state.sh {w}/state/$HOSTNAME$ {w}/canary/injected
}}
define host {{
    name                    test-compute
    register                0
    check_command           check_state
    check_interval          2
    retry_interval          1
    check_period            24x7
    notification_period     24x7
    active_checks_enabled   1
}}
define host {{
    use                     hostdown-bridge-compute,test-compute
    host_name               compute-01
    address                 127.0.0.1
    max_check_attempts      3
}}
define host {{
    use                     hostdown-bridge-compute,test-compute
    host_name               compute-02
    address                 127.0.0.1
    max_check_attempts      6
    _openstack_host         compute-02.cloud.example
}}
define command {{
    command_name    check_service_state
    command_line    {w}/bin/check_state.sh {w}/state/$HOSTNAME$!$SERVICEDESC$ {w}/canary/injected
}}
define service {{
    use                     hostdown-bridge-nova-compute
    host_name               compute-01
    service_description     nova-compute
    check_command           check_service_state
    max_check_attempts      2
    check_interval          2
    retry_interval          1
    check_period            24x7
    notification_period     24x7
}}
"""


def start_nagios(bridge_server, workdir, stack):
    w = workdir.path
    for sub in ("var/rw", "var/spool/checkresults", "var/tmp", "canary"):
        (w / sub).mkdir(parents=True)
    (w / "state").mkdir()
    workdir.write("bin/check_state.sh", CHECK, 0o755)
    script = workdir.script()
    token = workdir.token_for(bridge_server, "nagios")
    workdir.write("etc/nagios.cfg", MAIN.format(w=w))
    workdir.write("etc/resource.cfg", f"$USER10$={bridge_server.url}/v1/alerts/nagios\n$USER11$={token}\n")
    workdir.write("etc/hostdown-bridge.cfg",
                  (TEMPLATES / "nagios" / "hostdown-bridge.cfg").read_text().replace(SCRIPT_PATH, str(script)))
    workdir.write("etc/objects.cfg", OBJECTS.format(w=w))
    run("chown", "-R", "nagios:nagios", w / "var", w / "canary")
    run("/usr/sbin/nagios4", "-v", w / "etc/nagios.cfg")
    nagios = stack.start(Daemon("nagios", ["/usr/sbin/nagios4", w / "etc/nagios.cfg"], workdir))

    def checked(host):
        nagios.check()
        status = (w / "var/status.dat").read_text() if (w / "var/status.dat").exists() else ""
        for block in re.findall(r"hoststatus \{(.*?)\}", status, re.S):
            if f"host_name={host}\n" in block and "has_been_checked=1" in block:
                return "current_state=0" in block
        return False

    for host in ("compute-01", "compute-02"):
        wait_until(f"Nagios: first check of {host}", lambda: checked(host), 30)
    return nagios


def set_state(workdir, host, code):
    (workdir / "state" / host).write_text(f"{code}\n")


def test_hard_down_opens_an_incident_soft_attempts_record_only_recovery_cancels(bridge_server, workdir, stack):
    start_nagios(bridge_server, workdir, stack)
    after, fault = last_id(bridge_server), now()
    set_state(workdir, "compute-01", 2)
    soft = wait_for_signal(bridge_server, "SOFT DOWN", lambda s: s["labels"]["state_type"] == "SOFT", 30, after)
    hard = wait_for_signal(bridge_server, "HARD DOWN", lambda s: s["labels"]["state_type"] == "HARD", 30, after)
    report("nagios", "host check DOWN (3 attempts, 1 s apart)", fault, hard)
    assert (soft["kind"], soft["incident_id"]) == ("unmatched", None)
    assert soft["received_at"] < hard["received_at"]
    assert (hard["fingerprint"], hard["status"], hard["rule"], hard["candidate_host"]) == \
        ("compute-01/HARD", "firing", "nagios-host-down", "compute-01")
    assert hard["labels"]["attempt"] == hard["labels"]["max_attempts"] == "3"
    assert "openstack_host" not in hard["labels"]  # not set on compute-01: the rule falls back to host
    assert "touch" in hard["annotations"]["output"]  # the hostile output arrived as data ...
    assert not (workdir / "canary" / "injected").exists()  # ... and ran nowhere
    incident = bridge_server.wait_for_incident("compute-01", "fencing")
    assert incident["timeline"][0]["detail"]["signal_id"] == hard["id"]
    # the HARD event handler call and the PROBLEM notification are one signal
    wait_until("PROBLEM notification stored as a repeat", lambda: repeats(bridge_server, hard["id"]) >= 1, 30)

    after, repair = last_id(bridge_server), now()
    set_state(workdir, "compute-01", 0)
    resolved = wait_for_signal(bridge_server, "RECOVERY", lambda s: s["status"] == "resolved", 30, after)
    report("nagios", "host check UP", repair, resolved)
    assert resolved["fingerprint"] == "compute-01/HARD"
    assert_nova_untouched(bridge_server.wait_for_incident("compute-01", "cancelled"))
    capture(bridge_server, "nagios")


def test_soft_down_that_recovers_records_signals_and_starts_nothing(bridge_server, workdir, stack):
    start_nagios(bridge_server, workdir, stack)
    after = last_id(bridge_server)
    set_state(workdir, "compute-02", 2)
    soft = wait_for_signal(bridge_server, "SOFT DOWN", lambda s: s["status"] == "firing", 30, after)
    set_state(workdir, "compute-02", 0)
    up = wait_for_signal(bridge_server, "SOFT recovery", lambda s: s["status"] == "resolved", 30, after)
    assert soft["labels"]["state_type"] == up["labels"]["state_type"] == "SOFT"
    assert soft["labels"]["openstack_host"] == "compute-02.cloud.example"  # the custom variable
    assert {s["kind"] for s in signals(bridge_server)} == {"unmatched"}
    assert bridge_server.incidents() == []
