"""Prometheus + node_exporter + Alertmanager, configured from alert_templates/, feed the real bridge."""

import re

import pytest
import requests
import yaml

from tests.harness.procs import free_port, run, wait_until
from tests.monitoring.harness import TEMPLATES, Daemon, assert_nova_untouched, last_id, now, report, wait_for_signal

pytestmark = pytest.mark.monitoring

RULES = TEMPLATES / "prometheus" / "hostdown-bridge.rules.yml"
ROUTE = TEMPLATES / "alertmanager" / "hostdown-bridge.yml"


def test_templates_pass_the_official_checks():
    run("promtool", "check", "rules", RULES)
    run("promtool", "test", "rules", TEMPLATES / "prometheus" / "hostdown-bridge.rules.test.yml")
    run("amtool", "check-config", ROUTE)


def start_stack(bridge_server, workdir, stack, node_port):
    am_port, prom_port = free_port(), free_port()
    # Time compressed for the test: `for: 1m` becomes 0s and Prometheus scrapes and evaluates
    # every second. Everything else (expressions, labels, route timing, auth) is as shipped.
    rules = re.sub(r"for: \S+", "for: 0s", RULES.read_text())
    workdir.write("rules.yml", rules)
    workdir.write("prometheus.yml", yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "rule_files": [str(workdir / "rules.yml")],
        "scrape_configs": [{"job_name": "node", "static_configs": [
            {"targets": [f"127.0.0.1:{node_port}"], "labels": {"openstack_host": "compute-01"}}]}],
    }))
    route = yaml.safe_load(ROUTE.read_text())
    hook = route["receivers"][1]["webhook_configs"][0]
    hook["url"] = f"{bridge_server.url}/v1/alerts/alertmanager"
    hook["http_config"]["authorization"]["credentials_file"] = str(bridge_server.workdir / "webhook.token")
    workdir.write("alertmanager.yml", yaml.safe_dump(route))
    run("promtool", "check", "rules", workdir / "rules.yml")
    run("amtool", "check-config", workdir / "alertmanager.yml")

    alertmanager = stack.start(Daemon("alertmanager", [
        "prometheus-alertmanager", f"--config.file={workdir / 'alertmanager.yml'}",
        f"--storage.path={workdir / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
        "--cluster.listen-address=", f"--web.external-url=http://127.0.0.1:{am_port}"], workdir))
    prometheus = stack.start(Daemon("prometheus", [
        "prometheus", f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'prom-data'}",
        f"--web.listen-address=127.0.0.1:{prom_port}", f"--web.external-url=http://127.0.0.1:{prom_port}"],
        workdir))
    alertmanager.wait_http(f"http://127.0.0.1:{am_port}/-/ready")
    prometheus.wait_http(f"http://127.0.0.1:{prom_port}/-/ready")
    return f"http://127.0.0.1:{prom_port}"


def wait_scraped(prometheus: str) -> None:
    def scraped_up():
        result = requests.get(f"{prometheus}/api/v1/query", params={"query": 'up{job="node"}'}, timeout=5).json()
        return [r["value"][1] for r in result["data"]["result"]] == ["1"]

    wait_until("Prometheus scraping node_exporter", scraped_up, 30)


def node_down(status: str):
    """A ComputeNodeDown signal in that status (the always-firing Watchdog also arrives)."""
    return lambda s: s["status"] == status and s["labels"]["alertname"] == "ComputeNodeDown"


def node_exporter(workdir, port):
    return Daemon("node_exporter", ["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{port}",
                                    "--collector.disable-defaults", "--collector.loadavg"], workdir)


def test_node_exporter_down_opens_an_incident_and_its_return_cancels_it(bridge_server, workdir, stack):
    node_port = free_port()
    node = stack.start(node_exporter(workdir, node_port))
    node.wait_http(f"http://127.0.0.1:{node_port}/metrics")
    wait_scraped(start_stack(bridge_server, workdir, stack, node_port))

    after, fault = last_id(bridge_server), now()
    node.stop()
    firing = wait_for_signal(bridge_server, "ComputeNodeDown firing", node_down("firing"), 60, after)
    report("alertmanager", "node_exporter stopped", fault, firing)
    assert firing["labels"]["alertname"] == "ComputeNodeDown" and firing["labels"]["openstack_host"] == "compute-01"
    assert (firing["rule"], firing["kind"], firing["candidate_host"]) == ("compute-host-down", "host_down",
                                                                         "compute-01")
    incident = bridge_server.wait_for_incident("compute-01", "fencing")  # manual fencing: waits for a person

    after, repair = last_id(bridge_server), now()
    stack.start(node_exporter(workdir, node_port))
    resolved = wait_for_signal(bridge_server, "ComputeNodeDown resolved", node_down("resolved"),
                               60, after)
    report("alertmanager", "node_exporter restarted", repair, resolved)
    assert resolved["fingerprint"] == firing["fingerprint"]
    incident = bridge_server.wait_for_incident("compute-01", "cancelled")
    assert_nova_untouched(incident)
    assert len(bridge_server.incidents()) == 1


def test_a_fenced_host_stays_out_of_service_when_node_exporter_returns(bridge_server, workdir, stack):
    node_port = free_port()
    node = stack.start(node_exporter(workdir, node_port))
    node.wait_http(f"http://127.0.0.1:{node_port}/metrics")
    wait_scraped(start_stack(bridge_server, workdir, stack, node_port))

    node.stop()
    bridge_server.wait_for_incident("compute-01", "fencing", timeout=60)
    assert bridge_server.confirm("compute-01", reason="BMC reads chassis off").status_code == 201
    done = bridge_server.wait_for_incident("compute-01", "out_of_service")

    after = last_id(bridge_server)
    stack.start(node_exporter(workdir, node_port))
    wait_for_signal(bridge_server, "ComputeNodeDown resolved", node_down("resolved"), 60, after)
    later = wait_until("the resolve on the timeline", lambda: (lambda inc: inc if any(
        t["cause"].startswith("alert resolved") for t in inc["timeline"]) else None)(
            bridge_server.incident(done["id"])), 30)
    assert later["state"] == "out_of_service" and later["closed_at"] is None  # never back in service on "resolved"
    assert len(bridge_server.incidents()) == 1
