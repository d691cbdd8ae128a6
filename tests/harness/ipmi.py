"""OpenIPMI's ipmi_sim (Debian openipmi) for tests: one IPMI 2.0 BMC on 127.0.0.1, a free UDP
port, user admin with a password made per run.

The host's "power" is a child process ipmi_sim starts (startcmd): chassis power off
SIGTERMs it and status reads off once it is gone; power on starts it again. The VM serial
channel is what gives the BMC its chassis power control; nothing connects to it. stop()
signals the process group: the startcmd child, which ipmi_sim itself leaves running, goes too.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
from pathlib import Path

from tests.harness.procs import Peer, Process, free_port, wait_until

USERNAME = "admin"
SIM_EMU = "mc_setbmc 0x20\n" \
          "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n" \
          "sel_enable 0x20 1000 0x0a\n" \
          "mc_enable 0x20\n"  # ipmi_sim segfaults unless mc_setbmc comes first


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class IpmiSim(Peer):
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_udp_port()
        self.password = "ip" + secrets.token_hex(7)  # IPMI passwords: at most 16 (v1.5) / 20 bytes

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _lan_conf(self) -> Path:
        auths = "none md2 md5 straight"
        conf = self.workdir / "lan.conf"
        conf.write_text(
            'name "compute01"\n'
            "set_working_mc 0x20\n"
            "  startlan 1\n"
            f"    addr 127.0.0.1 {self.port}\n"
            "    priv_limit admin\n"
            + "".join(f"    allowed_auths_{level} {auths}\n" for level in ("callback", "user", "operator", "admin"))
            + "    guid a123456789abcdefa123456789abcdef\n"
            "  endlan\n"
            f"  serial 15 127.0.0.1 {free_port()} codec VM\n"
            '  startcmd "sleep 86400"\n'
            "  startnow true\n"
            "  poweroff_wait 1\n"
            "  kill_wait 1\n"
            f'  user 2 true "{USERNAME}" "{self.password}" admin 10 {auths}\n')
        return conf

    def ipmitool(self, *args: str, password: str | None = None) -> subprocess.CompletedProcess:
        """ipmitool against this BMC; the password through the environment (-E), not argv."""
        return subprocess.run(["ipmitool", "-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", str(self.port),
                               "-U", USERNAME, "-E", "-N", "1", "-R", "1", *args], capture_output=True, text=True,
                              timeout=30, env={"PATH": "/usr/bin:/bin", "IPMI_PASSWORD": password or self.password})

    def chassis_power(self) -> str:
        """'on' or 'off' as ipmitool reads it, '' if it could not."""
        out = self.ipmitool("chassis", "power", "status").stdout
        return out.rsplit(" ", 1)[-1].strip() if "Chassis Power is" in out else ""

    def start(self, timeout: float = 30) -> "IpmiSim":
        assert shutil.which("ipmi_sim"), "ipmi_sim not found: tests/install_peers.sh installs openipmi"
        (self.workdir / "state").mkdir(parents=True, exist_ok=True)
        emu = self.workdir / "sim.emu"
        emu.write_text(SIM_EMU)
        self.process = Process("ipmi_sim", ["ipmi_sim", "-c", self._lan_conf(), "-f", emu,
                                            "-s", self.workdir / "state", "-n"],
                               self.workdir / "ipmi_sim.log").start()

        def powered_on():
            self.process.check()
            return self.chassis_power() == "on"

        wait_until(f"ipmi_sim on {self.address}", powered_on, timeout, interval=0.1)
        return self
