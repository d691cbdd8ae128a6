"""Power control through an installed ClusterLabs fence agent (fence_ipmilan, fence_redfish, ...).

The agent is run without a shell and without arguments: every parameter, the password too,
goes as key=value lines on its stdin, the agents' own interface. Only the target's fields and a
short list of options reach it, each value checked so that no line can add another.
Exit codes per the fence-agents convention: 0 success (status: on), 2 status off, else failure.

Options: agent (required, e.g. fence_ipmilan), and any of ALLOWED, passed through.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess

from bridge.fencing.base import OFF, ON, UNKNOWN, FenceTarget
from bridge.fencing.bmccall import failure, scrub

AGENT_NAME = re.compile(r"fence_[a-z0-9_]{1,40}")
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
# agent parameters a target may set, beyond action, ip, username and password
ALLOWED = frozenset({"ipport", "lanplus", "cipher", "privlvl", "auth", "method", "ssl", "ssl_insecure",
                     "ssl_secure", "notls", "systems_uri", "plug", "power_timeout", "power_wait",
                     "login_timeout", "shell_timeout"})
VALUE = re.compile(r"[A-Za-z0-9._:/@%+,\-\[\]]{0,255}")  # no space, =, newline or NUL: one line, one key
# the agent gets only this environment: nothing of the bridge's (tokens) leaks to it
AGENT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "PYTHONWARNINGS": "ignore"}


def agent_path(target: FenceTarget) -> str:
    name = str(target.options.get("agent", ""))
    if not AGENT_NAME.fullmatch(name):
        raise failure(target, "agent", f"options.agent must name a fence agent (fence_...), not {name!r}")
    path = shutil.which(name, path=SEARCH_PATH)
    if not path:
        raise failure(target, "agent", f"{name} is not installed (looked in PATH and /usr/sbin)")
    return path


def stdin_lines(target: FenceTarget, action: str) -> str:
    """The agent's parameters, one key=value a line; FenceError naming a refused option."""
    params = {"action": action, "ip": target.address, "username": target.username}
    for key, value in target.options.items():
        if key == "agent" or value is None or value is False:
            continue
        if key not in ALLOWED:
            raise failure(target, "options", f"option {key!r} is not passed to fence agents "
                                              f"(allowed: {', '.join(sorted(ALLOWED))})")
        params[key] = "1" if value is True else str(value)
    for key, value in params.items():
        if value is not None and not VALUE.fullmatch(str(value)):
            raise failure(target, "options", f"{key} has characters a fence agent line cannot carry")
    if target.password is not None:
        if any(c in target.password.reveal() for c in "\r\n\0"):
            raise failure(target, "password", "it contains a line break or NUL")
        params["password"] = target.password.reveal()
    return "".join(f"{k}={v}\n" for k, v in params.items() if v is not None)


class FenceAgentPower:
    name = "fence_agent"

    def power_off(self, target: FenceTarget) -> None:
        code, out = self._run(target, "off", "power off")
        if code != 0:
            raise failure(target, "power off", f"agent exited {code}: {out}")

    def power_state(self, target: FenceTarget) -> str:
        code, out = self._run(target, "status", "power state")
        if code not in (0, 2):
            raise failure(target, "power state", f"agent exited {code}: {out}")
        said = re.findall(r"^Status: (ON|OFF)\s*$", out, re.MULTILINE)
        # off only when exit code and output agree: anything else is no proof
        if code == 2 and said == ["OFF"]:
            return OFF
        if code == 0 and said == ["ON"]:
            return ON
        return UNKNOWN

    def _run(self, target: FenceTarget, action: str, what: str) -> tuple[int, str]:
        argv = [agent_path(target)]  # no arguments: the agent reads its parameters from stdin
        lines = stdin_lines(target, action)
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    env=AGENT_ENV, text=True, shell=False, start_new_session=True, close_fds=True)
        except OSError as e:
            raise failure(target, what, e) from None
        try:
            out, _ = proc.communicate(lines, timeout=target.timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the agent and what it runs (ipmitool, ...)
            except ProcessLookupError:
                pass
            proc.communicate()
            raise failure(target, what, f"agent gave no answer within {target.timeout:g}s") from None
        return proc.returncode, scrub(out.strip()[-500:], target)
