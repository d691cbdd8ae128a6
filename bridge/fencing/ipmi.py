"""IPMI power control with pyghmi: chassis power off (hard), and power status read back.

target.address is host[:port] or [v6-address][:port]; the port defaults to 623. pyghmi's
sessions run on its own I/O thread and can wait for ever on a silent BMC: every call is
bounded by target.timeout (bmccall.bounded).
"""

from __future__ import annotations

from bridge.fencing.base import OFF, ON, UNKNOWN, FenceTarget
from bridge.fencing.bmccall import bounded, failure

_STATES = {"off": OFF, "on": ON}


def host_port(address: str) -> tuple[str, int]:
    """('10.0.0.5', 623) from '10.0.0.5', '10.0.0.5:6230', '[fd00::5]:6230' or 'fd00::5'."""
    host, port = address, "623"
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else port
    elif address.count(":") == 1:
        host, port = address.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not a host[:port]: {address!r}")
    return host, int(port)


class IpmiPower:
    name = "ipmi"

    def power_off(self, target: FenceTarget) -> None:
        # pyghmi reads the state first and sends nothing when the host is already off
        bounded(target, "power off", lambda: self._command(target).set_power("off", wait=False))

    def power_state(self, target: FenceTarget) -> str:
        return bounded(target, "power state",
                       lambda: _STATES.get(self._command(target).get_power().get("powerstate"), UNKNOWN))

    def _command(self, target: FenceTarget):
        from pyghmi.ipmi import command  # on first use: importing it costs every CLI command 0.4 s

        try:
            host, port = host_port(target.address or "")
        except ValueError as e:
            raise failure(target, "address", e) from None
        password = target.password.reveal() if target.password else ""
        # bytes: pyghmi keeps them as bytes and compares a str with them when it looks for a
        # session to reuse; with str it misses the logged-in one and waits for ever on it
        return command.Command(bmc=host, userid=(target.username or "").encode(), password=password.encode(),
                               port=port, keepalive=False)
