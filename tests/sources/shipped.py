"""The shipped templates, run the way the monitoring system runs them, on captured macros.

Nagios expands $MACRO$ in a command line, then runs it without a shell when no shell
character stands outside quotes (all ours are single-quoted): shlex splits the same way.
The captured files hold every NAGIOS_* environment macro of a real notification or
event handler, so feeding them through the shipped command definitions gives exactly the
body the shipped script would send from that real Nagios call.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path

import yaml

from tests.conftest import SAMPLES

TEMPLATES = Path(__file__).resolve().parents[2] / "alert_templates"
NAGIOS_CAPTURED = SAMPLES / "nagios" / "captured"


def notify_script():
    spec = importlib.util.spec_from_file_location("hostdown_bridge_notify",
                                                  TEMPLATES / "nagios" / "hostdown_bridge_notify.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nagios_commands() -> dict[str, str]:
    text = (TEMPLATES / "nagios" / "hostdown-bridge.cfg").read_text()
    blocks = re.findall(r"define command \{(.*?)\}", text, re.S)
    out = {}
    for block in blocks:
        fields = dict(line.strip().split(None, 1) for line in block.strip().splitlines())
        out[fields["command_name"]] = fields["command_line"]
    return out


def nagios_argv(command: str, env: dict[str, str], user: dict[str, str]) -> list[str]:
    def value(match):
        name = match.group(1)
        if name in user:
            return user[name]
        return env.get(f"NAGIOS_{name}", match.group(0))  # Nagios leaves an unknown macro as it is

    return shlex.split(re.sub(r"\$([A-Z0-9_]+)\$", value, nagios_commands()[command]))


def nagios_body(capture: str, url: str = "http://bridge/v1/alerts/nagios", token_file: str = "/t") -> dict:
    """The JSON the shipped command + script send for one captured Nagios call."""
    env = json.loads((NAGIOS_CAPTURED / capture).read_text())["env"]
    command = "hostdown-bridge-service" if env["NAGIOS_SERVICEDESC"] else "hostdown-bridge-host"
    script = notify_script()
    argv = nagios_argv(command, env, {"USER10": url, "USER11": token_file})
    return script.body(script.parse_args(argv[1:]), env)


def default_rules() -> list[dict]:
    path = Path(__file__).resolve().parents[2] / "bridge" / "default-config.yaml"
    return yaml.safe_load(path.read_text())["rules"]


def icinga2_body(vars: dict[str, str]) -> dict:
    """The JSON the shipped Icinga 2 commands send, from a captured call's variables (the
    capture's names: ICINGA_HOSTSTATE was $host.state$ and so on, see its icinga2.conf)."""
    argv = ["--url", "http://bridge/v1/alerts/icinga2", "--token-file", "/t",
            "--host", vars["hostname"], "--address", vars["hostaddress"], "--state", vars["hoststate"],
            "--state-type", vars["hoststatetype"], "--attempt", vars["hostattempt"],
            "--max-attempts", vars["maxhostattempts"], "--last-state-change", vars["lasthoststatechange"],
            "--output", vars["hostoutput"], "--label", f"openstack_host={vars['openstack_host']}"]
    if vars["notificationtype"]:
        argv += ["--notification-type", vars["notificationtype"]]
    script = notify_script()
    return script.body(script.parse_args(argv), {})


def icinga2_calls() -> list[dict]:
    return json.loads((SAMPLES / "icinga2" / "captured" / "captured_calls.json").read_text())
