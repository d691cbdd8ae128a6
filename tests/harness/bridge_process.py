"""Run the bridge as a real process (hostdown-bridge serve) and talk to it over HTTP."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests
import yaml

from bridge.sources import PARSERS
from tests.harness.procs import Process, free_port, wait_until

WEBHOOK_TOKEN = "test-webhook-token"
ADMIN_TOKEN = "test-admin-token"


def base_config(workdir: Path, **overrides) -> dict:
    """A config whose tokens live in files under workdir; overrides merge one level deep."""
    (workdir / "webhook.token").write_text(WEBHOOK_TOKEN + "\n")
    (workdir / "admin.token").write_text(ADMIN_TOKEN + "\n")
    config: dict[str, Any] = {
        "dry_run": True,
        "database": {"url": f"sqlite:///{workdir / 'bridge.sqlite'}"},
        "auth": {
            "webhook_tokens": {source: {"file": str(workdir / "webhook.token")}
                               for source in PARSERS},
            "admin_tokens": [{"name": "ops", "token": {"file": str(workdir / "admin.token")}}],
        },
        "engine": {"idle_poll": 0.5},
        "rules": [{
            "name": "compute-host-down", "source": "alertmanager",
            "match_re": {"alertname": "HostDown|NodeDown|ComputeNodeDown"},
            "kind": "host_down", "host": {"template": "{{ labels.openstack_host }}"},
        }],
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


class BridgeProcess:
    def __init__(self, workdir: Path, config: dict, env: dict | None = None, workers: int = 2):
        self.workdir = workdir
        self.config_path = workdir / "bridge.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = Process("bridge", [sys.executable, "-m", "bridge", "serve", "--config", self.config_path,
                                          "--bind", f"127.0.0.1:{self.port}", "--workers", workers],
                               workdir / "bridge.log", env=env)
        self.env = self.process.env
        self.log_path = self.process.log_path

    def start(self, timeout: float = 30) -> "BridgeProcess":
        self.process.start().wait_http(self.url + "/readyz", timeout)
        return self

    def log(self) -> str:
        return self.process.log(5000)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (gunicorn master and workers), wait until all of it is gone."""
        self.process.stop(sig, timeout=20)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def cli(self, *args: str, token: str = ADMIN_TOKEN, timeout: float = 60) -> subprocess.CompletedProcess:
        """`hostdown-bridge <args> --url <this bridge>`, as an operator would run it."""
        return subprocess.run([sys.executable, "-m", "bridge", *args, "--url", self.url],
                              env={**self.env, "HOSTDOWN_BRIDGE_TOKEN": token},
                              capture_output=True, text=True, timeout=timeout)

    # ---- HTTP ------------------------------------------------------------------------

    def request(self, method: str, path: str, token: str | None = ADMIN_TOKEN, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def post_alert(self, source: str, body, token: str = WEBHOOK_TOKEN) -> requests.Response:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return self.request("POST", f"/v1/alerts/{source}", token=token, data=data,
                            headers={"Content-Type": "application/json"})

    def confirm(self, host: str, reason: str = "powered off at the PDU", **extra) -> requests.Response:
        return self.request("POST", f"/v1/hosts/{host}/fence-confirmation", json={"reason": reason, **extra})

    def incidents(self, **query) -> list[dict]:
        response = self.request("GET", "/v1/incidents", params=query)
        response.raise_for_status()
        return response.json()["incidents"]

    def incident(self, incident_id: int) -> dict:
        response = self.request("GET", f"/v1/incidents/{incident_id}")
        response.raise_for_status()
        return response.json()

    def wait_for_incident(self, host: str, states: set[str] | str, timeout: float = 30) -> dict:
        states = {states} if isinstance(states, str) else states

        def found():
            for inc in self.incidents(host=host):
                if inc["state"] in states:
                    return self.incident(inc["id"])
            return None

        return wait_until(f"incident for {host} in {sorted(states)}", found, timeout)
