"""The systemd unit in deploy/: systemd's own checks (verify, and its offline security score)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bridge.config import DEFAULTS

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "hostdown-bridge.service"
INSTALLED = "/opt/hostdown-bridge/bin/hostdown-bridge"


def local_copy(tmp_path) -> Path:
    """The unit with ExecStart pointing at this venv's command (verify checks it exists)."""
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(INSTALLED, str(Path(sys.executable).with_name("hostdown-bridge"))))
    return unit


def test_systemd_verifies_the_unit(tmp_path):
    done = subprocess.run(["systemd-analyze", "verify", local_copy(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_the_unit_is_hardened_by_systemds_own_measure(tmp_path):
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", local_copy(tmp_path)],
                          capture_output=True, text=True)
    exposure = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout).group(1))
    assert exposure <= 2.0, done.stdout  # systemd calls 0-2 "OK"; a default service is 9.6


def test_the_unit_serves_as_the_dedicated_user_and_waits_out_the_graceful_shutdown():
    unit = dict(line.split("=", 1) for line in UNIT.read_text().splitlines() if re.match(r"^[A-Z]\w*=", line))
    assert unit["ExecStart"] == f"{INSTALLED} serve" and unit["Type"] == "notify"
    assert unit["User"] == "hostdown-bridge" and unit["EnvironmentFile"].startswith("-/etc/hostdown-bridge/")
    assert int(unit["TimeoutStopSec"]) > DEFAULTS["server"]["graceful_timeout"]
