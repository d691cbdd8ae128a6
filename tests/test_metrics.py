"""Metrics: summed over gunicorn workers (multiprocess mode), named by Prometheus's conventions,
the incident timeline's histograms filled by a real incident."""

import os

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge import incidents as sm
from tests.conftest import sample
from tests.promtext import samples, value

pytestmark = pytest.mark.process

# counters end in _total; durations are seconds; everything is the bridge's own
UNITS = {"counter": "_total", "histogram": "_seconds"}


def families(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def test_four_workers_sum_their_counters_in_one_scrape_and_an_incident_fills_the_histograms(
        bridge_process, tmp_path):
    shared = tmp_path / "metrics"
    shared.mkdir()
    bridge = bridge_process(env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared)}, workers=4)
    posts = 40
    for _ in range(posts):  # a new connection each: the kernel hands them to different workers
        assert bridge.post_alert("alertmanager", sample("webhook_firing_api_v2.json")).status_code == 202
    counted_by = {f.stem.rsplit("_", 1)[1] for f in shared.glob("counter_*.db")}
    assert len(counted_by) >= 2, f"all requests went to one worker: {counted_by}"

    bridge.wait_for_incident("compute-01", sm.FENCING)
    assert bridge.confirm("compute-01").status_code == 201
    bridge.wait_for_incident("compute-01", sm.OUT_OF_SERVICE)

    text = bridge.request("GET", "/metrics", token=None).text
    found = samples(text)
    assert value(found, "hostdown_bridge_signals_received_total", source="alertmanager", status="firing") == posts
    assert value(found, "hostdown_bridge_incidents", state="out_of_service") == 1
    for stage in ("received", "fenced", "forced_down", "alert_to_forced_down"):
        assert value(found, "hostdown_bridge_incident_stage_seconds_count", stage=stage) == 1, stage
    # the sample alert started two days before this test: past the largest bucket
    assert value(found, "hostdown_bridge_incident_stage_seconds_bucket", stage="received", le="86400.0") == 0
    for call in ("force_down", "disable"):
        assert value(found, "hostdown_bridge_nova_calls_total", call=call, result="dry_run") == 1
        assert value(found, "hostdown_bridge_nova_call_duration_seconds_count", call=call, result="dry_run") == 1
    assert value(found, "hostdown_bridge_fencing_attempts_total", driver="manual", step="request",
                 result="dry_run") + value(found, "hostdown_bridge_fencing_attempts_total", driver="manual",
                                           step="request", result="requested") == 1
    assert value(found, "hostdown_bridge_transitions_total", from_state="fenced", to_state="forced_down") == 1

    kinds = families(text)
    for name, kind in kinds.items():
        assert name.startswith("hostdown_bridge_"), name
        if kind in UNITS:
            assert f"{name}_total" in {s for s, _ in found} or kind != "counter", name
            assert kind != "histogram" or name.endswith("_seconds"), name
    assert {"hostdown_bridge_signals_received", "hostdown_bridge_holds", "hostdown_bridge_fencing_attempts",
            "hostdown_bridge_nova_calls", "hostdown_bridge_requests_shed"} - {
                n for n, k in kinds.items() if k == "counter"} <= {"hostdown_bridge_holds",
                                                                   "hostdown_bridge_requests_shed"}
