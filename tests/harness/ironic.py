"""A real Ironic API for tests: PyPI's ironic in a venv of its own, one all-in-one process
(`ironic`: API and conductor, no RPC bus), SQLite, no Keystone (auth_strategy=noauth), the
fake-hardware type, 127.0.0.1 on a free port. Its nodes are enrolled, made manageable and
powered on through openstacksdk, as a client would.

The venv lives in $IRONICLAB_DIR (default <repo>/.ironicbox, git-ignored), made once:
    python -m tests.harness.ironic install
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import openstack

from tests.harness.procs import Peer, Process, free_port, run, wait_until

REPO = Path(__file__).resolve().parents[2]
LAB_DIR = Path(os.environ.get("IRONICLAB_DIR") or REPO / ".ironicbox")
VENV = LAB_DIR / "venv"
PACKAGES = ["ironic==39.0.0"]
CONSTRAINTS = Path(__file__).resolve().parent / "ironic-constraints.txt"
NODES = ("compute-01", "compute-02", "compute-03", "compute-04")
_INTERFACES = {"hardware_types": "fake-hardware", "power": "fake", "management": "fake", "boot": "fake",
               "deploy": "fake", "inspect": "no-inspect", "raid": "no-raid", "vendor": "no-vendor",
               "bios": "no-bios", "console": "no-console", "network": "noop", "rescue": "no-rescue",
               "firmware": "no-firmware", "storage": "noop"}


def install() -> Path:
    """The lab venv with the pinned ironic; skipped when it is there already."""
    marker = VENV / ".ironiclab-packages"
    if not (marker.exists() and marker.read_text() == " ".join(PACKAGES)):
        LAB_DIR.mkdir(parents=True, exist_ok=True)
        run(sys.executable, "-m", "venv", "--clear", VENV)  # based on the real python, even from a venv
        run(VENV / "bin" / "pip", "install", "-q", "-c", CONSTRAINTS, *PACKAGES, timeout=1800)
        marker.write_text(" ".join(PACKAGES))
    return VENV


def _config(workdir: Path, port: int) -> str:
    enabled = "".join(f"enabled_{k}{'' if k == 'hardware_types' else '_interfaces'} = {v}\n"
                      for k, v in _INTERFACES.items())
    return ("[DEFAULT]\nauth_strategy = noauth\nrpc_transport = none\nhost = ironiclab\nuse_stderr = true\n"
            f"{enabled}"
            f"[api]\nhost_ip = 127.0.0.1\nport = {port}\n"
            f"[database]\nconnection = sqlite:///{workdir / 'ironic.sqlite'}\n"
            "[dhcp]\ndhcp_provider = none\n"
            "[conductor]\nautomated_clean = false\n"
            f"[oslo_concurrency]\nlock_path = {workdir / 'locks'}\n")


class IronicLab(Peer):
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connection(self) -> openstack.connection.Connection:
        return openstack.connection.Connection(auth_type="none", baremetal_endpoint_override=self.url,
                                               api_timeout=30)

    def start(self, timeout: float = 180) -> "IronicLab":
        assert (VENV / "bin" / "ironic").exists(), f"no Ironic venv in {VENV}: python -m tests.harness.ironic install"
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "ironic.conf"
        conf.write_text(_config(self.workdir, self.port))
        run(VENV / "bin" / "ironic-dbsync", "--config-file", conf, "create_schema", timeout=timeout)
        self.process = Process("ironic", [VENV / "bin" / "ironic", "--config-file", conf],
                               self.workdir / "ironic.log", env={"PYTHONWARNINGS": "ignore"}).start()
        self.process.wait_http(self.url + "/v1/drivers", timeout)
        self._enroll(timeout)
        return self

    def _enroll(self, timeout: float) -> None:
        """Every node manageable and powered on, as the fake power interface then reports."""
        conn = self.connection()
        for name in NODES:
            node = conn.baremetal.create_node(name=name, driver="fake-hardware")
            conn.baremetal.set_node_provision_state(node, "manage", wait=True, timeout=timeout)
            conn.baremetal.set_node_power_state(node, "power on")
        wait_until("Ironic nodes powered on", lambda: all(
            conn.baremetal.get_node(name).power_state == "power on" for name in NODES), timeout, interval=0.2)


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python -m tests.harness.ironic install")
    print(f"ironic lab venv: {install()}")
