"""The real monitoring systems, from their Debian packages, on 127.0.0.1.

Each is configured from the files in alert_templates/ (only paths, ports, the bridge's URL
and token file are filled in), started in the foreground by the test and stopped by its
own PID. A system that cannot start fails the test: nothing here skips.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

from tests.harness.bridge_process import BridgeProcess
from tests.harness.procs import Process, wait_until

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "alert_templates"
SCRIPT = TEMPLATES / "nagios" / "hostdown_bridge_notify.py"
# the installation path the templates name, replaced by the test's copy
SCRIPT_PATH = "/usr/local/lib/hostdown-bridge/hostdown_bridge_notify.py"
TIMINGS_FILE = os.environ.get("HOSTDOWN_BRIDGE_TIMINGS")


class Workdir:
    """A directory the daemons' own users (nagios, zabbix, postgres) can reach; tmp_path cannot be."""

    def __init__(self, name: str):
        self.path = Path(tempfile.mkdtemp(prefix=f"hostdown-bridge-{name}-"))
        self.path.chmod(0o755)

    def __truediv__(self, other) -> Path:
        return self.path / other

    def write(self, name: str, text: str, mode: int = 0o644, owner: str | None = None) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        if owner:
            shutil.chown(path, owner, owner)
        return path

    def token_for(self, bridge: BridgeProcess, owner: str) -> Path:
        """The bridge's webhook token, readable by the daemon's user only."""
        return self.write("bridge.token", (bridge.workdir / "webhook.token").read_text(), 0o400, owner)

    def script(self) -> Path:
        return self.write("bin/hostdown_bridge_notify.py", SCRIPT.read_text(), 0o755)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class Daemon(Process):
    """One foreground daemon, run in the workdir, its log there."""

    def __init__(self, name: str, argv: list, workdir: Workdir, env: dict | None = None, user: str | None = None):
        super().__init__(name, argv, workdir / f"{name}.log", env=env, cwd=workdir.path, user=user)


class Stack:
    """Daemons stopped in reverse order of start, whatever happens."""

    def __init__(self):
        self.daemons: list[Daemon] = []

    def start(self, daemon: Daemon) -> Daemon:
        self.daemons.append(daemon)
        return daemon.start()

    def stop(self) -> None:
        for daemon in reversed(self.daemons):
            daemon.stop()


# ---- what the bridge stored -------------------------------------------------------------------

def signals(bridge: BridgeProcess) -> list[dict]:
    """Every stored signal, oldest first."""
    response = bridge.request("GET", "/v1/signals", params={"limit": 1000})
    response.raise_for_status()
    return list(reversed(response.json()["signals"]))


def wait_for_signal(bridge: BridgeProcess, what: str, predicate: Callable[[dict], bool], timeout: float,
                    after: int = 0) -> dict:
    """The first stored signal with id > after that satisfies predicate."""
    def found():
        return next((s for s in signals(bridge) if s["id"] > after and predicate(s)), None)

    return wait_until(what, found, timeout, interval=0.1)


def repeats(bridge: BridgeProcess, signal_id: int) -> int:
    return next(s["repeats"] for s in signals(bridge) if s["id"] == signal_id)


def stored_at(sig: dict) -> float:
    return datetime.fromisoformat(sig["received_at"].replace("Z", "+00:00")).timestamp()


def last_id(bridge: BridgeProcess) -> int:
    return max((s["id"] for s in signals(bridge)), default=0)


def report(source: str, event: str, injected_at: float, sig: dict) -> float:
    """Time from the fault (or repair) being injected to the bridge storing the signal."""
    seconds = stored_at(sig) - injected_at
    print(f"\n[timing] {source}: {event} -> signal stored in {seconds:.2f} s")
    if TIMINGS_FILE:
        with open(TIMINGS_FILE, "a") as f:
            f.write(json.dumps({"source": source, "event": event, "seconds": round(seconds, 3)}) + "\n")
    return seconds


def assert_nova_untouched(incident: dict) -> None:
    """Dry-run, no cloud, no fencing proof: no step past fencing, no Nova call recorded."""
    assert incident["dry_run"] is True
    for entry in incident["timeline"]:
        assert entry["to_state"] not in ("fenced", "forced_down", "nova_down", "out_of_service"), entry


def now() -> float:
    return time.time()


def capture(bridge: BridgeProcess, source: str) -> None:
    """With $HOSTDOWN_BRIDGE_CAPTURE_DIR set, keep every body the bridge got (samples for docs)."""
    target = os.environ.get("HOSTDOWN_BRIDGE_CAPTURE_DIR")
    if not target:
        return
    Path(target).mkdir(parents=True, exist_ok=True)
    for sig in signals(bridge):
        name = f"{source}-{sig['id']:03d}-{sig['status']}-{sig['labels'].get('state_type', '')}.json"
        (Path(target) / name).write_text(json.dumps(sig["raw"], indent=2) + "\n")
