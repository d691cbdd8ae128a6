"""Shadow mode and the gates against the real Nova API: Nova is read, never changed, and the
plan is recorded on each incident."""

from __future__ import annotations

import pytest

from bridge import incidents as sm
from tests.realnova.test_bridge_with_real_nova import alert, live_config, service

pytestmark = [pytest.mark.realnova, pytest.mark.process]


def test_shadow_mode_leaves_nova_untouched_and_records_the_whole_plan(
        tmp_path, real_nova, clean_hosts, bridge_env, bridge_process, nova_proxy):
    bridge = bridge_process(live_config(tmp_path, mode="shadow", gates={"max_count": 1}), env=bridge_env)
    assert bridge.post_alert("alertmanager", alert("compute-1", "shadow-1")).status_code == 202
    planned = bridge.wait_for_incident("compute-1", sm.HELD)
    assert bridge.confirm("compute-1").status_code == 201  # proof changes nothing in shadow mode
    assert bridge.post_alert("alertmanager", alert("compute-2", "shadow-2")).status_code == 202
    gated = bridge.wait_for_incident("compute-2", sm.HELD)

    [plan] = [t for t in planned["timeline"] if t["cause"].startswith("shadow: ")]
    assert plan["cause"] == ("shadow: would fence it with driver manual, then nova force_down, then nova disable "
                             "on compute-1")
    assert plan["detail"]["would"] == ["fence", "force_down", "disable"] and plan["detail"]["driver"] == "manual"
    reading = plan["detail"]["nova"]  # Nova was read: the service exists, the call would be made
    assert reading["call"] == "force_down" and reading["dry_run"] and "skipped" not in reading
    assert reading["request"]["service_id"] == str(service(real_nova, "compute-1").id)
    hold = [t for t in planned["timeline"] if t["to_state"] == sm.HELD][-1]
    assert hold["detail"]["gate"] == "shadow" and hold["cause"].startswith("shadow mode, nothing done: ")
    # the second host: which gate would have fired
    assert [t["detail"]["gate"] for t in gated["timeline"] if t["to_state"] == sm.HELD] == ["mass_limit"]

    for host in ("compute-1", "compute-2"):
        svc = service(real_nova, host)
        assert svc.is_forced_down is False and svc.status == "enabled" and svc.state == "up"
    assert nova_proxy.count("PUT", "/os-services") == 0 and nova_proxy.count("POST", "/os-services") == 0
    assert nova_proxy.count("GET", "/os-services") >= 2  # inventory and the plan's reading


@pytest.fixture
def rack_aggregate(real_nova):
    """A Nova aggregate h13-rack-a holding compute-1 and compute-2, deleted afterwards."""
    compute = real_nova.connection().compute
    aggregate = compute.create_aggregate(name="h13-rack-a")
    try:
        for host in ("compute-1", "compute-2"):
            compute.add_host_to_aggregate(aggregate, host)
        yield aggregate.name
    finally:
        for host in compute.get_aggregate(aggregate).hosts or []:
            compute.remove_host_from_aggregate(aggregate, host)
        compute.delete_aggregate(aggregate)


def test_a_nova_aggregate_is_a_failure_domain_with_its_own_limit(
        tmp_path, real_nova, clean_hosts, bridge_env, bridge_process, nova_proxy, rack_aggregate):
    bridge = bridge_process(live_config(tmp_path, gates={
        "failure_domain": {"nova": "aggregate", "match": "h13-rack-.*"}, "per_domain": {"max_count": 1}}),
        env=bridge_env)
    both = alert("compute-1", "aggregate-1")  # in one request: neither is judged before both are in
    both["alerts"] += alert("compute-2", "aggregate-2")["alerts"]
    assert bridge.post_alert("alertmanager", both).status_code == 202
    for host in ("compute-1", "compute-2"):
        held = bridge.wait_for_incident(host, sm.HELD)
        assert [t["detail"]["gate"] for t in held["timeline"] if t["to_state"] == sm.HELD] == ["domain_limit"]
        assert "2 hosts down in failure domain h13-rack-a, more than the 1 allowed" in held["last_error"]
    assert nova_proxy.count("GET", "/os-aggregates") >= 1
    assert nova_proxy.count("PUT", "/os-services") == 0
