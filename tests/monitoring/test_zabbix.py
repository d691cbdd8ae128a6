"""Zabbix 6 (PostgreSQL) with the shipped Webhook media type, imported through the API,
feeds the real bridge: zabbix_sender fires a trigger, then recovers it."""

from datetime import datetime

import pytest
import yaml

from tests.harness.bridge_process import base_config
from tests.harness.procs import wait_until
from tests.monitoring.harness import (
    TEMPLATES, assert_nova_untouched, last_id, now, repeats, report, signals, wait_for_signal,
)
from tests.monitoring.zabbix import Zabbix
from tests.sources.shipped import default_rules

pytestmark = [pytest.mark.monitoring, pytest.mark.zabbix]

MEDIA_TYPE = TEMPLATES / "zabbix" / "hostdown-bridge-media-type.yaml"


def test_the_export_carries_the_shipped_script():
    [media] = yaml.safe_load(MEDIA_TYPE.read_text())["zabbix_export"]["media_types"]
    assert media["script"] == (TEMPLATES / "zabbix" / "hostdown-bridge.js").read_text()


def test_problem_update_and_recovery_reach_the_bridge(bridge_server, workdir, stack):
    zabbix = Zabbix(workdir, stack).start()
    token = (bridge_server.workdir / "webhook.token").read_text().strip()
    ids = zabbix.provision(MEDIA_TYPE.read_text(), f"{bridge_server.url}/v1/alerts/zabbix", token)
    # the server learns the new item within CacheUpdateFrequency; until then the sender is refused
    wait_until("Zabbix server knows compute.alive", lambda: zabbix.send("compute-01", "compute.alive", "1"), 60, 0.5)

    after, fault = last_id(bridge_server), now()
    assert zabbix.send("compute-01", "compute.alive", "0")
    problem = wait_for_signal(bridge_server, "Zabbix problem", lambda s: s["status"] == "firing", 60, after)
    report("zabbix", "zabbix_sender compute.alive=0", fault, problem)
    assert problem["labels"]["host"] == "compute-01" and problem["labels"]["severity"] == "High"
    assert problem["labels"]["tag_openstack_host"] == "compute-01" and problem["labels"]["tag_scope"] == "availability"
    assert (problem["rule"], problem["candidate_host"]) == ("zabbix-host-unavailable", "compute-01")
    assert "recovery_event_id" not in problem["annotations"]  # {EVENT.RECOVERY.ID} arrived unresolved
    bridge_server.wait_for_incident("compute-01", "fencing")

    # an update operation (Admin acknowledges; the recipient is another user) repeats the problem
    # this host's only: the server's own preloaded host can raise problems of its own on a slow run
    [event] = zabbix.call("problem.get", {"output": ["eventid", "clock"], "hostids": ids["host"]})
    assert event["eventid"] == problem["fingerprint"]
    # {EVENT.DATE} {EVENT.TIME} are in the recipient's time zone: UTC, as the README sets it up
    assert datetime.fromisoformat(problem["starts_at"].replace("Z", "+00:00")).timestamp() == int(event["clock"])
    zabbix.call("event.acknowledge", {"eventids": event["eventid"], "action": 6, "message": "looking"})
    wait_until("update notification stored as a repeat", lambda: repeats(bridge_server, problem["id"]) >= 1, 60, 0.2)

    after, repair = last_id(bridge_server), now()
    assert zabbix.send("compute-01", "compute.alive", "1")
    resolved = wait_for_signal(bridge_server, "Zabbix recovery", lambda s: s["status"] == "resolved", 60, after)
    report("zabbix", "zabbix_sender compute.alive=1", repair, resolved)
    assert resolved["fingerprint"] == problem["fingerprint"]
    assert resolved["annotations"]["recovery_event_id"] != problem["fingerprint"]
    assert_nova_untouched(bridge_server.wait_for_incident("compute-01", "cancelled"))
    assert [s["id"] for s in signals(bridge_server)] == [problem["id"], resolved["id"]]
    # problem, update, recovery: each marked sent once the script returned (the alerter records it last)
    wait_until("Zabbix: 3 notifications sent", lambda: [a["status"] for a in zabbix.alerts()] == ["1"] * 3, 30, 0.2)


def test_a_maintenance_period_in_zabbix_holds_its_host(bridge_process, tmp_path, workdir, stack):
    zabbix = Zabbix(workdir, stack).start()
    (tmp_path / "zabbix-api.token").write_text(zabbix.api_token("nova-hostdown-bridge gates") + "\n")
    bridge = bridge_process(base_config(tmp_path, rules=default_rules(), gates={"zabbix_maintenance": {
        "url": zabbix.api_url, "token": {"file": str(tmp_path / "zabbix-api.token")}, "cache": 1}}))
    token = (bridge.workdir / "webhook.token").read_text().strip()
    # operations not paused for suppressed problems: Zabbix sends the problem on, the bridge holds it
    ids = zabbix.provision(MEDIA_TYPE.read_text(), f"{bridge.url}/v1/alerts/zabbix", token, pause_suppressed=False)
    wait_until("Zabbix server knows compute.alive", lambda: zabbix.send("compute-01", "compute.alive", "1"), 60, 0.5)
    zabbix.maintain(ids["host"], "firmware update, ticket 12")

    after = last_id(bridge)
    assert zabbix.send("compute-01", "compute.alive", "0")
    problem = wait_for_signal(bridge, "Zabbix problem", lambda s: s["status"] == "firing", 60, after)
    [event] = zabbix.call("problem.get", {"output": ["eventid", "suppressed"], "hostids": ids["host"]})
    assert (event["eventid"], event["suppressed"]) == (problem["fingerprint"], "1")  # Zabbix suppressed it
    inc = bridge.wait_for_incident("compute-01", "held", timeout=60)
    hold = [t for t in inc["timeline"] if t["to_state"] == "held"][-1]
    assert hold["detail"]["gate"] == "maintenance"
    assert inc["last_error"] == ("gate maintenance: Zabbix host compute-01 is in maintenance "
                                 "(firmware update, ticket 12): holding")
    assert_nova_untouched(inc)
