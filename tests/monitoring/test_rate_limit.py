"""The real Alertmanager against a bridge whose webhook rate is low: shed with 503 and
Retry-After (Alertmanager drops a 429), and its retries deliver every alert, each once."""

import time

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.bridge_process import base_config
from tests.harness.procs import free_port, wait_until
from tests.monitoring.harness import Daemon, signals
from tests.sources.shipped import default_rules

pytestmark = pytest.mark.monitoring

HOSTS = [f"compute-{i:02d}" for i in range(1, 6)]


def shed(bridge) -> float:
    """Alertmanager's webhook requests the bridge shed (its only worker's count)."""
    text = bridge.request("GET", "/metrics").text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "hostdown_bridge_requests_shed_total" and sample.labels["source"] == "alertmanager")


def test_alertmanager_retries_a_shed_delivery_until_every_alert_is_stored_once(bridge_process, tmp_path, workdir, stack):
    bridge = bridge_process(base_config(tmp_path, rules=default_rules(),
                                        server={"rate_limit": {"webhook": "1 per 2 seconds"}}), workers=1)
    am_port = free_port()
    workdir.write("alertmanager.yml", yaml.safe_dump({
        "route": {"receiver": "bridge", "group_by": ["openstack_host"], "group_wait": "0s",
                  "group_interval": "5m", "repeat_interval": "1h"},
        "receivers": [{"name": "bridge", "webhook_configs": [{
            "url": f"{bridge.url}/v1/alerts/alertmanager", "max_alerts": 0,
            "http_config": {"authorization": {"type": "Bearer",
                                              "credentials_file": str(bridge.workdir / "webhook.token")}}}]}],
    }))
    alertmanager = stack.start(Daemon("alertmanager", [
        "prometheus-alertmanager", f"--config.file={workdir / 'alertmanager.yml'}",
        f"--storage.path={workdir / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
        "--cluster.listen-address=", f"--web.external-url=http://127.0.0.1:{am_port}"], workdir))
    alertmanager.wait_http(f"http://127.0.0.1:{am_port}/-/ready")

    alerts = [{"labels": {"alertname": "ComputeNodeDown", "openstack_host": host, "severity": "critical"}}
              for host in HOSTS]
    sent = time.monotonic()
    requests.post(f"http://127.0.0.1:{am_port}/api/v2/alerts", json=alerts, timeout=10).raise_for_status()

    def stored_hosts():
        return sorted(s["labels"].get("openstack_host") for s in signals(bridge))

    # one group per host, so five deliveries at once against one every 2 s: some are shed
    wait_until("every alert stored through Alertmanager's retries", lambda: stored_hosts() == HOSTS,
               timeout=90, interval=1)
    print(f"\n[timing] alertmanager: {shed(bridge):.0f} deliveries shed, all {len(HOSTS)} alerts stored "
          f"{time.monotonic() - sent:.1f} s after they were sent")
    assert shed(bridge) >= 1
    assert all(s["repeats"] == 0 for s in signals(bridge))
