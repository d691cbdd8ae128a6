"""The safety gates against a real Alertmanager feeding the real bridge process: alerts are
pushed into Alertmanager's API as Prometheus would, routed as alert_templates/ route them."""

import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
import yaml

from tests.harness.bridge_process import base_config
from tests.harness.procs import free_port, run, wait_until
from tests.monitoring.harness import TEMPLATES, Daemon

pytestmark = pytest.mark.monitoring

ROUTE = TEMPLATES / "alertmanager" / "hostdown-bridge.yml"
RULES = [
    {"name": "host-down", "source": "alertmanager", "match": {"alertname": "ComputeNodeDown"}, "kind": "host_down",
     "host": {"template": "{{ labels.openstack_host }}"}},
    {"name": "tor-down", "source": "alertmanager", "match": {"alertname": "SwitchDown"}, "kind": "upstream_down",
     "host": {"template": "{{ labels.rack }}"}},
]


class Alertmanager:
    def __init__(self, url: str):
        self.url = url

    def fire(self, *labelsets: dict, ends_in: float = 3600) -> None:
        now = datetime.now(timezone.utc)
        alerts = [{"labels": labels, "startsAt": now.isoformat(),
                   "endsAt": (now + timedelta(seconds=ends_in)).isoformat()} for labels in labelsets]
        requests.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=10).raise_for_status()

    def silence(self, comment: str, **labels) -> str:
        now = datetime.now(timezone.utc)
        body = {"matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in labels.items()],
                "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
                "createdBy": "test", "comment": comment}
        response = requests.post(f"{self.url}/api/v2/silences", json=body, timeout=10)
        response.raise_for_status()
        return response.json()["silenceID"]


def host(name: str, rack: str = "r01") -> dict:
    return {"alertname": "ComputeNodeDown", "openstack_host": name, "rack": rack, "severity": "critical"}


@pytest.fixture
def alertmanager_for(workdir, stack):
    """Factory: a real Alertmanager routing ComputeNodeDown, SwitchDown and Watchdog to the bridge as
    the shipped route does (group_interval shortened to 1 s so that nothing waits on timing)."""
    def start(bridge, port: int | None = None) -> Alertmanager:
        port = port or free_port()
        route = yaml.safe_load(ROUTE.read_text())
        for sub in route["route"]["routes"]:
            sub["group_interval"] = "1s"
        route["route"]["routes"][0]["matchers"] = ['alertname =~ "ComputeNodeDown|SwitchDown"']
        hook = route["receivers"][1]["webhook_configs"][0]
        hook["url"] = f"{bridge.url}/v1/alerts/alertmanager"
        hook["http_config"]["authorization"]["credentials_file"] = str(bridge.workdir / "webhook.token")
        workdir.write("alertmanager.yml", yaml.safe_dump(route))
        run("amtool", "check-config", workdir / "alertmanager.yml")
        daemon = stack.start(Daemon("alertmanager", [
            "prometheus-alertmanager", f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=", f"--web.external-url=http://127.0.0.1:{port}"], workdir))
        daemon.wait_http(f"http://127.0.0.1:{port}/-/ready")
        return Alertmanager(f"http://127.0.0.1:{port}")
    return start


@pytest.fixture
def gated_bridge(bridge_process, tmp_path):
    def start(**gates):
        return bridge_process(base_config(tmp_path, rules=RULES, gates=gates))
    return start


def held_by(bridge, name: str, gate: str) -> dict:
    inc = bridge.wait_for_incident(name, "held", timeout=60)
    holds = [t for t in inc["timeline"] if t["to_state"] == "held"]
    assert holds[-1]["detail"]["gate"] == gate, inc
    return inc


def test_thirty_of_forty_at_once_are_held_one_alone_proceeds_and_an_approval_releases_exactly_one(
        gated_bridge, alertmanager_for):
    # 40 hosts, at most 10 down at once; the debounce lets a burst arrive before any is judged
    bridge = gated_bridge(max_count=10, min_duration=5, recheck=1)
    am = alertmanager_for(bridge)
    am.fire(host("compute-40", "r04"))
    bridge.wait_for_incident("compute-40", "fencing", timeout=60)  # alone: it proceeds
    am.fire(*(host(f"compute-{n:02d}", f"r0{n // 10}") for n in range(1, 31)))
    wait_until("30 incidents held", lambda: len(bridge.incidents(state="held")) == 30, 90)
    held = {i["host"]: i for i in bridge.incidents(state="held")}
    assert "hosts down, more than the 10 allowed at once" in held["compute-07"]["last_error"]

    out = bridge.cli("incidents", "approve", str(held["compute-07"]["id"]), "--gate", "mass_limit",
                     "--reason", "rack power really lost, ticket 9")
    assert out.returncode == 0, out.stderr
    assert f"gate mass_limit approved for incident {held['compute-07']['id']}" in out.stdout
    bridge.wait_for_incident("compute-07", "fencing", timeout=30)
    still = {i["host"] for i in bridge.incidents(state="held")}
    assert still == set(held) - {"compute-07"}
    assert [i["state"] for i in bridge.incidents(host="compute-40")] == ["fencing"]


def test_a_watchdog_gap_from_alertmanager_holds_everything(gated_bridge, alertmanager_for):
    bridge = gated_bridge(watchdog={"source": "alertmanager", "match": {"alertname": "Watchdog"}, "max_age": 4})
    am = alertmanager_for(bridge)
    am.fire({"alertname": "Watchdog", "severity": "none"})
    wait_until("Watchdog received", lambda: bridge.request("GET", "/readyz").json()
               .get("observers", {}).get("watchdog", "ok") == "ok" and any(
                   s["labels"].get("alertname") == "Watchdog"
                   for s in bridge.request("GET", "/v1/signals").json()["signals"]), 30)
    am.fire(host("compute-01"))
    bridge.wait_for_incident("compute-01", "fencing", timeout=60)
    # Alertmanager re-sends the Watchdog only every repeat_interval (1m): 5 s without it is a gap
    time.sleep(5)
    am.fire(host("compute-02"), host("compute-03"))
    inc = held_by(bridge, "compute-02", "watchdog")
    assert "monitoring heartbeat alert last arrived" in inc["last_error"]
    held_by(bridge, "compute-03", "watchdog")


def test_a_switch_alert_holds_the_hosts_behind_it(gated_bridge, alertmanager_for):
    bridge = gated_bridge(failure_domain={"label": "rack"})
    am = alertmanager_for(bridge)
    am.fire({"alertname": "SwitchDown", "rack": "r01", "severity": "critical"})
    wait_until("SwitchDown stored", lambda: any(s["kind"] == "upstream_down" for s in
                                                bridge.request("GET", "/v1/signals").json()["signals"]), 30)
    am.fire(host("compute-01", "r01"), host("compute-02", "r01"), host("compute-11", "r02"))
    held_by(bridge, "compute-01", "upstream")
    held_by(bridge, "compute-02", "upstream")
    bridge.wait_for_incident("compute-11", "fencing", timeout=60)


def test_a_silence_in_alertmanager_blocks_its_host(gated_bridge, alertmanager_for):
    port = free_port()  # the bridge is told where Alertmanager is before either starts
    bridge = gated_bridge(min_duration=4, recheck=1,
                          alertmanager_silences={"url": f"http://127.0.0.1:{port}", "cache": 1})
    am = alertmanager_for(bridge, port)
    am.fire(host("compute-01"), host("compute-02"))
    wait_until("both incidents open", lambda: len(bridge.incidents()) == 2, 30)
    # within the debounce: someone silences compute-01 for maintenance
    silence = am.silence("firmware update, ticket 7", openstack_host="compute-01")
    inc = held_by(bridge, "compute-01", "silenced")
    assert f"silenced in Alertmanager ({silence} by test: firmware update, ticket 7)" in inc["last_error"]
    bridge.wait_for_incident("compute-02", "fencing", timeout=60)
