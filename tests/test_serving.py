"""`hostdown-bridge serve` as operators run it: JSON logs, SIGTERM, TLS."""

import json
import signal
import subprocess
import sys

import pytest
import requests
import yaml

from bridge import incidents as sm
from tests.conftest import sample
from tests.harness.bridge_process import BridgeProcess, base_config
from tests.harness.procs import wait_until

pytestmark = pytest.mark.process


def test_json_logs_one_object_per_line_and_sigterm_stops_every_engine_releasing_its_leases(bridge_process):
    bridge = bridge_process(logging={"format": "json"}, workers=2)
    assert bridge.post_alert("alertmanager", sample("webhook_firing_api_v2.json")).status_code == 202
    bridge.wait_for_incident("compute-01", sm.FENCING)
    assert bridge.confirm("compute-01", reason="PDU\nport 7 \x1b[31m").status_code == 201
    incident = bridge.wait_for_incident("compute-01", sm.OUT_OF_SERVICE)
    bridge.kill(signal.SIGTERM)
    assert bridge.process.proc.wait(5) == 0

    lines = bridge.log_path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line, gunicorn's access log included
    assert all(line.isascii() for line in lines)
    moves = [(r["from_state"], r["to_state"]) for r in records if r.get("event") == "transition"]
    assert moves == [(sm.SUSPECTED, sm.FENCING), (sm.FENCING, sm.FENCED), (sm.FENCED, sm.FORCED_DOWN),
                     (sm.FORCED_DOWN, sm.NOVA_DOWN), (sm.NOVA_DOWN, sm.OUT_OF_SERVICE)]
    fenced = next(r for r in records if r.get("to_state") == sm.FENCED)
    assert fenced["incident"] == incident["id"] and fenced["host"] == "compute-01"
    assert fenced["cause"] == "fenced: manual by ops: PDU\nport 7 \x1b[31m"
    assert any('"POST /v1/alerts/alertmanager HTTP/1.1" 202' in r["message"] for r in records)
    stopped = [r for r in records if r["message"].startswith("engine stopped;")]
    assert len(stopped) == 2 and len({r["pid"] for r in stopped}) == 2  # each worker's engine


def self_signed(tmp_path):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def wait_https(bridge, https: str, cert) -> None:
    """Until the bridge answers /readyz over HTTPS, trusting `cert`."""
    def ready():
        bridge.process.check()
        try:
            return requests.get(https + "/readyz", verify=cert, timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until("the bridge over HTTPS", ready, 30)


def test_serves_https_with_the_configured_certificate(tmp_path):
    cert, key = self_signed(tmp_path)
    config = base_config(tmp_path, server={"tls": {"certfile": str(cert), "keyfile": str(key)}})
    bridge = BridgeProcess(tmp_path, config, workers=1)
    https = bridge.url.replace("http://", "https://")
    bridge.process.start()
    try:
        wait_https(bridge, https, cert)
        with pytest.raises(requests.ConnectionError):
            requests.get(bridge.url + "/healthz", timeout=5)  # plain HTTP is not served
    finally:
        bridge.stop()


def test_check_config_names_an_unreadable_tls_file(tmp_path):
    config = base_config(tmp_path, server={"tls": {"certfile": str(tmp_path / "none.crt"),
                                                   "keyfile": str(tmp_path / "none.key")}})
    (tmp_path / "bridge.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "bridge", "check-config", tmp_path / "bridge.yaml"],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert f"Error: configuration: server.tls.certfile: cannot read {tmp_path / 'none.crt'}" in done.stderr
